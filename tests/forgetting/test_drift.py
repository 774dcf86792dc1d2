"""KL drift: the reference passages, the per-arm statistics, and harsh vs gentle adapters trained with evalkit train."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from evalkit.forgetting.drift import drift_stats, reference_passages
from evalkit.models.base import PassageDrift


def test_reference_passages_are_fixed_general_prose():
    a, b = reference_passages(5), reference_passages(5)
    assert a == b and len(a) == 5 and len({pid for pid, _ in a}) == 5
    assert all(pid.startswith("hellaswag-") and len(text.split()) > 10 for pid, text in a)


def test_drift_stats_weight_tokens_and_take_percentiles_over_passages():
    drifts = [PassageDrift(tokens=10, kl_sum=1.0, kl_max=0.5, top1_agree=9), PassageDrift(tokens=30, kl_sum=0.3, kl_max=0.1, top1_agree=30),
              PassageDrift(tokens=0, kl_sum=0.0, kl_max=0.0, top1_agree=0)]
    s = drift_stats("v1", drifts)
    assert s.passages == 2 and s.tokens == 40
    assert s.mean_kl == pytest.approx(1.3 / 40) and s.top1_agreement == pytest.approx(39 / 40)
    assert s.p50 == pytest.approx((0.1 + 0.01) / 2) and s.max == pytest.approx(0.1) and s.max_token_kl == 0.5
    assert not s.no_effect


def test_a_harsh_adapter_drifts_further_than_a_gentle_one(tmp_path, tiny_model_dir):
    """Trained with evalkit train on the tiny model: same data, the harsh one with a 100× learning rate and 6× the steps."""
    from evalkit.forgetting import ForgettingSpec
    from evalkit.forgetting.spec import DriftSpec
    from evalkit.runner import RunOptions, run_suite
    from evalkit.train import load_train_config, train

    rows = [{"prompt": [{"role": "user", "content": f"Incident {i}: database down"}],
             "completion": [{"role": "assistant", "content": json.dumps({"severity": "SEV1"})}]} for i in range(8)]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (tmp_path / "train.yaml").write_text(
        f"base: {tiny_model_dir}\ndata: {{path: train.jsonl}}\nlora: {{r: 4, alpha: 8, target_modules: [q_proj, v_proj]}}\n"
        "training: {max_steps: 2, batch_size: 4, max_length: 64, learning_rate: 1.0e-4, logging_steps: 1, save_steps: 100}\noutput_dir: gentle\n"
    )
    cfg = load_train_config(tmp_path / "train.yaml")
    gentle = train(cfg).adapter_dir
    harsh = train(replace(cfg, output_dir=tmp_path / "harsh", training=replace(cfg.training, max_steps=12, learning_rate=1e-2))).adapter_dir
    spec = ForgettingSpec(kl=DriftSpec(passages=4, max_tokens=48))
    res = run_suite(None, RunOptions(base=str(tiny_model_dir), adapters=(f"gentle={gentle}", f"harsh={harsh}"), runs_dir=tmp_path / "runs",
                                     cache_path=tmp_path / "c.sqlite", forgetting_only=True), forgetting=spec)
    fs = res.summary.forgetting
    assert fs.drift_of("harsh").mean_kl > 5 * fs.drift_of("gentle").mean_kl > 0
    assert fs.drift_of("harsh").top1_agreement <= fs.drift_of("gentle").top1_agreement
