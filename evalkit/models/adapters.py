"""Adapter references and the checks made before an adapter is loaded.

Checks run on file headers only (no model load): the adapter must be a peft LoRA
directory with safetensors weights (pickled ``.bin`` only with ``allow_pickle``),
and every LoRA matrix must fit the base model's module shapes and vocabulary. An
adapter whose recorded base differs from ``--base`` is refused too.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from safetensors import safe_open

from evalkit._util import read_json_object
from evalkit.errors import AdapterError, ModelError
from evalkit.models.resolve import ResolvedModel, fingerprint_dir, resolve_model

__all__ = ["AdapterRef", "base_shapes", "check_compatible", "parse_adapter_arg", "resolve_adapter", "resolve_local", "safetensors_shapes"]

TRAIN_RECORD = "evalkit-train.json"
_ARM_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,63}$")


@dataclass(frozen=True)
class AdapterRef:
    """An adapter directory, checked and fingerprinted."""

    name: str
    """The arm name (``--adapter NAME=PATH``; default: the directory name)."""
    path: Path | None
    """The adapter folder; None for an adapter served by an endpoint."""
    fingerprint: str
    config: dict[str, Any] = field(default_factory=dict)
    """``adapter_config.json`` (for a served adapter: ``{"served_model": NAME}``)."""
    train_record: dict[str, Any] | None = None
    """``evalkit-train.json`` when the adapter was trained by evalkit."""

    @property
    def weights(self) -> Path:
        assert self.path is not None, "a served adapter has no local weights"
        st = self.path / "adapter_model.safetensors"
        return st if st.exists() else self.path / "adapter_model.bin"


def parse_adapter_arg(arg: str) -> tuple[str | None, str]:
    """Split ``NAME=PATH`` (or a bare ``PATH``) from the command line.

    Raises:
        AdapterError: ``NAME=`` with no path, or a NAME that is not a valid arm name (when the whole
            argument is not itself an existing path, which may contain ``=``).
    """
    name, sep, path = arg.partition("=")
    if sep and _ARM_NAME.match(name):
        if not path:
            raise AdapterError(f"--adapter {arg}: no path after {name}=; give --adapter {name}=PATH")
        return name, path
    if sep and "/" not in name and not Path(arg).expanduser().exists():
        raise AdapterError(
            f"--adapter {arg}: arm name {name!r} must start with a letter and hold only letters, digits, _ and - "
            f"(at most 64); rename it"
        )
    if not arg:
        raise AdapterError("--adapter: empty path; give the folder that holds adapter_config.json")
    return None, arg


def _arm_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_-]", "-", path.name).strip("-") or "adapter"
    return name if name[0].isalpha() else f"a-{name}"


def _check_lora_config(config: dict[str, Any], where: Path) -> None:
    """The fields evalkit and peft rely on, with the types they must have."""
    if str(config.get("peft_type", "")).upper() != "LORA":
        raise AdapterError(f"{where}: peft_type is {config.get('peft_type')!r}; evalkit evaluates LoRA adapters")
    r = config.get("r")
    if not isinstance(r, int) or isinstance(r, bool) or r < 1:
        raise AdapterError(f"{where}: r is {r!r}; a LoRA adapter's rank r must be a whole number >= 1")
    alpha = config.get("lora_alpha", r)
    if not isinstance(alpha, (int, float)) or isinstance(alpha, bool) or not math.isfinite(alpha) or alpha <= 0:
        raise AdapterError(f"{where}: lora_alpha is {alpha!r}; it must be a positive number (scaling is lora_alpha / r)")
    for key in ("use_rslora", "use_dora", "fan_in_fan_out", "inference_mode"):
        if key in config and config[key] is not None and not isinstance(config[key], bool):
            raise AdapterError(f"{where}: {key} is {config[key]!r}; it must be true or false (a JSON boolean, not a string)")
    if config.get("bias", "none") not in ("none", "all", "lora_only"):
        raise AdapterError(f"{where}: bias is {config.get('bias')!r}; it must be one of none, all, lora_only")
    recorded = config.get("base_model_name_or_path")
    if recorded is not None and not isinstance(recorded, str):
        raise AdapterError(f"{where}: base_model_name_or_path is {recorded!r}; it must be the base model's name or path as a string")
    targets = config.get("target_modules")
    if targets is not None and not isinstance(targets, str) and not (isinstance(targets, list) and all(isinstance(t, str) for t in targets)):
        raise AdapterError(f"{where}: target_modules is {targets!r}; it must be a module name, a list of names, or a regex string")
    for key in ("rank_pattern", "alpha_pattern"):
        pattern = config.get(key) or {}
        if not isinstance(pattern, dict) or not all(isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0 for v in pattern.values()):
            raise AdapterError(f"{where}: {key} is {pattern!r}; it must map module names to positive numbers")
    to_save = config.get("modules_to_save")
    if to_save is not None and not (isinstance(to_save, list) and all(isinstance(m, str) for m in to_save)):
        raise AdapterError(f"{where}: modules_to_save is {to_save!r}; it must be a list of module names")


def safetensors_shapes(path: Path, error: type[Exception]) -> dict[str, tuple[int, ...]]:
    """Tensor shapes from a safetensors file's header; a damaged or truncated file is ``error`` naming it."""
    try:
        with safe_open(str(path), framework="pt") as fh:
            return {k: tuple(fh.get_slice(k).get_shape()) for k in fh.keys()}
    except Exception as exc:  # safetensors raises its own SafetensorError (and OSError) for damaged files
        raise error(f"{path}: not a readable safetensors file ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
                    f"it is truncated or damaged: copy or save it again") from None


def resolve_adapter(arg: str, *, allow_pickle: bool = False) -> AdapterRef:
    """Check that ``arg`` (``[NAME=]PATH``) is a usable peft adapter and fingerprint it.

    Reads only the config and the weights' header: the config's fields must have the types
    peft needs, and every LoRA matrix's rank must be the configured ``r`` (or a ``rank_pattern`` value).

    Raises:
        AdapterError: missing directory or config, a malformed config or training record, no weights,
            damaged weights, ranks that disagree with the config, pickled weights without consent.
    """
    name, raw = parse_adapter_arg(arg)
    path = Path(raw).expanduser()
    if not path.exists():
        raise AdapterError(f"adapter {raw!r}: no such directory; give the folder that holds adapter_config.json")
    if not path.is_dir() or not (path / "adapter_config.json").exists():
        raise AdapterError(f"adapter {raw!r}: no adapter_config.json there; is this a peft adapter directory?")
    config_path = path / "adapter_config.json"
    config = read_json_object(config_path, AdapterError, "restore it from training (peft writes it with save_pretrained)")
    _check_lora_config(config, config_path)
    st, pt = path / "adapter_model.safetensors", path / "adapter_model.bin"
    if not st.exists():
        if pt.exists() and not allow_pickle:
            raise AdapterError(
                f"adapter {raw!r} has only pickled weights (adapter_model.bin), which can run code when loaded; "
                "convert it to safetensors, or pass --allow-pickle if you trust its source"
            )
        if not pt.exists():
            raise AdapterError(f"adapter {raw!r}: no adapter_model.safetensors; the adapter has no weights")
    weights = st if st.exists() else pt
    if weights == st:
        _check_ranks(config, safetensors_shapes(st, AdapterError), config_path)
    record_path = path / TRAIN_RECORD
    record = read_json_object(record_path, AdapterError, "delete it or restore it from training") if record_path.exists() else None
    if record is not None:
        _check_train_record(record, record_path)
    return AdapterRef(
        name=name or _arm_name(path.resolve()),
        path=path.resolve(),
        fingerprint=fingerprint_dir(path, [config_path, weights]),
        config=config,
        train_record=record,
    )


def _check_train_record(record: dict[str, Any], where: Path) -> None:
    """The fields of ``evalkit-train.json`` that evaluation reads, with the types it reads them as."""
    fix = "delete it or restore it from training"
    for key, kind in (("base", dict), ("config", dict), ("chat_template_sha256", str)):
        if record.get(key) is not None and not isinstance(record[key], kind):
            raise AdapterError(f"{where}: {key} is {record[key]!r}, not a{'n object' if kind is dict else ' string'}; {fix}")
    fingerprint = (record.get("base") or {}).get("fingerprint")
    if fingerprint is not None and not isinstance(fingerprint, str):
        raise AdapterError(f"{where}: base.fingerprint is {fingerprint!r}, not a string; {fix}")
    quant = (record.get("config") or {}).get("quantization")
    if quant is not None and not (isinstance(quant, dict) and isinstance(quant.get("mode", "none"), str)):
        raise AdapterError(f"{where}: config.quantization is {quant!r}, not an object with a mode; {fix}")


def _pattern_rank(config: dict[str, Any], module: str, where: Path) -> int:
    """The rank peft gives ``module``: the first ``rank_pattern`` key matching it (as peft's ``get_pattern_key``), else ``r``."""
    for pattern, rank in (config.get("rank_pattern") or {}).items():
        try:
            if re.match(rf"(.*\.)?({pattern})$", module):
                return int(rank)
        except re.error as exc:
            raise AdapterError(f"{where}: rank_pattern key {pattern!r} is not a valid regular expression ({exc}); fix it") from None
    return int(config["r"])


def _check_ranks(config: dict[str, Any], shapes: dict[str, tuple[int, ...]], where: Path) -> None:
    """Every lora_A has the rank the config gives its module (``r``, or its ``rank_pattern`` rank): a config that disagrees with its weights is refused."""
    for key, shape in shapes.items():
        m = _LORA_KEY.match(key)
        if not (m and m.group("which") == "A" and shape):
            continue
        module = m.group("module").removeprefix("base_model.model.")
        want = _pattern_rank(config, module, where)
        if shape[0] != want:
            source = f"rank_pattern gives {module} rank {want}" if want != config["r"] else f"r is {config['r']}"
            raise AdapterError(
                f"{where}: {source} but {key} has rank {shape[0]}; the config does not belong to these weights: "
                f"restore the adapter_config.json saved with them"
            )


def base_shapes(base: ResolvedModel) -> dict[str, tuple[int, ...]]:
    """Weight shapes of the base model, read from safetensors headers (no tensors loaded)."""
    shapes: dict[str, tuple[int, ...]] = {}
    if base.path is None:
        return shapes
    for f in sorted(base.path.glob("*.safetensors")):
        if not f.name.startswith("adapter_"):
            shapes.update(safetensors_shapes(f, ModelError))
    return shapes


def _adapter_shapes(adapter: AdapterRef) -> dict[str, tuple[int, ...]]:
    if adapter.weights.suffix != ".safetensors":
        return {}  # pickled weights are checked by peft when loaded
    return safetensors_shapes(adapter.weights, AdapterError)


_LORA_KEY = re.compile(r"^(?:base_model\.model\.)?(?P<module>.+?)\.lora_(?P<which>A|B|embedding_A|embedding_B)(?:\.[^.]+)?(?:\.weight)?$")


def check_compatible(
    adapter: AdapterRef, base: ResolvedModel, shapes: dict[str, tuple[int, ...]], *, allow_base_mismatch: bool = False
) -> None:
    """Refuse an adapter that was built for another base.

    Three signals, strongest first: the LoRA matrices must fit the base's module
    shapes; saved full modules (``modules_to_save``, e.g. an embedding) must match
    the base's vocabulary; and the base the adapter records must be this one (by
    evalkit's fingerprint when present, else by ``base_model_name_or_path``).

    Raises:
        AdapterError: naming the first mismatch found.
    """
    where = f"adapter {adapter.name!r} ({adapter.path})"
    tied = "lm_head.weight" not in shapes and "model.embed_tokens.weight" in shapes
    for key, shape in (_adapter_shapes(adapter) if shapes else {}).items():  # no safetensors base: peft checks at load
        m = _LORA_KEY.match(key)
        if m:
            module, which = m.group("module"), m.group("which")
            base_key = f"{module}.weight"
            if base_key not in shapes and module == "lm_head" and tied:
                base_key = "model.embed_tokens.weight"
            if base_key not in shapes:
                raise AdapterError(f"{where}: targets module {module!r}, which the base {base.spec!r} does not have; it was trained for another model")
            out_f, in_f = shapes[base_key][0], shapes[base_key][-1]
            if which == "embedding_A":
                in_f, fits = out_f, shape[-1] == out_f  # embeddings are stored (vocab, dim)
            elif which == "embedding_B":
                fits = shape[0] == in_f
            elif which == "A":
                fits = shape[-1] == in_f
            else:
                fits = shape[0] == out_f
            if not fits:
                raise AdapterError(
                    f"{where}: lora_{which} of {module!r} has shape {list(shape)}, but the base {base.spec!r} has "
                    f"{list(shapes[base_key])} there; the adapter was trained for another model"
                )
            continue
        plain = key.removeprefix("base_model.model.")
        if plain in shapes and shapes[plain] != shape:
            raise AdapterError(
                f"{where}: saved module {plain!r} has shape {list(shape)} but the base has {list(shapes[plain])} "
                f"(vocabulary or width differs); the adapter was trained for another model"
            )
    record_fp = (adapter.train_record or {}).get("base", {}).get("fingerprint")
    if record_fp == base.fingerprint or allow_base_mismatch:
        return
    recorded = str(adapter.config.get("base_model_name_or_path") or "")
    if recorded and recorded.rstrip("/").rsplit("/", 1)[-1].lower() not in base.identities:
        raise AdapterError(
            f"{where}: trained on base {recorded!r}, but --base is {base.spec!r}; evaluate it on the base it was "
            f"trained on, or pass --allow-base-mismatch if the two are the same weights"
        )


def resolve_local(base: str, adapters: Sequence[str], options: Any) -> tuple[ResolvedModel, list[AdapterRef]]:
    """Resolve a local base and its adapters and check that every adapter fits it (headers only).

    Args:
        options: a ``BackendOptions`` (``allow_pickle``, ``allow_network``, ``allow_base_mismatch``).

    Raises:
        ModelError, AdapterError: naming the first problem found.
    """
    model = resolve_model(base, allow_network=options.allow_network)
    refs = [resolve_adapter(a, allow_pickle=options.allow_pickle) for a in adapters]
    names = [a.name for a in refs]
    for name in names:
        if name == "base":
            raise AdapterError("arm name 'base' is taken by the base model; name the adapter with --adapter NAME=PATH")
        if names.count(name) > 1:
            raise AdapterError(f"arm name {name!r} is used twice; name the adapters apart with --adapter NAME=PATH")
    shapes = base_shapes(model)
    for ad in refs:
        check_compatible(ad, model, shapes, allow_base_mismatch=options.allow_base_mismatch)
    return model, refs
