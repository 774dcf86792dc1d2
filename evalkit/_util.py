"""Small helpers shared across evalkit: hashing, atomic writes, schema validation."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import tempfile
import warnings
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = [
    "atomic_write",
    "canonical_json",
    "evalkit_home",
    "first_line",
    "json_path",
    "load_yaml",
    "package_schema",
    "read_json_object",
    "quiet_libraries",
    "versions",
    "sha256_bytes",
    "sha256_text",
    "validate_against",
]


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_text(text: str) -> str:
    return sha256_bytes(text.encode("utf-8"))


def canonical_json(obj: Any) -> str:
    """JSON with sorted keys and no whitespace: the form evalkit hashes."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` for a foreign exception; libraries' messages run to many lines."""
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def evalkit_home() -> Path:
    """Where evalkit keeps converted models and the generation cache (``$EVALKIT_HOME``)."""
    return Path(os.environ.get("EVALKIT_HOME") or Path.home() / ".cache" / "evalkit")


def atomic_write(path: Path, data: str | bytes) -> None:
    """Write ``data`` to ``path`` so a reader sees either the old file or the whole new one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = "wb" if isinstance(data, bytes) else "w"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def json_path(parts: Iterable[Any]) -> str:
    """Render a jsonschema error path as ``metrics[0].params.schema``."""
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def read_json_object(path: Path, error: type[Exception], fix: str) -> dict[str, Any]:
    """Read a JSON file that must hold an object; every way it can be wrong is one ``error`` naming the file and ``fix``."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise error(f"{path}: missing; {fix}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}); {fix}") from None
    except json.JSONDecodeError as exc:
        raise error(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno}); {fix}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror or exc}); {fix}") from None
    if not isinstance(doc, dict):
        raise error(f"{path}: must hold a JSON object, not a {type(doc).__name__}; {fix}")
    return doc


def package_schema(name: str) -> dict[str, Any]:
    """Load one of the JSON Schemas shipped in ``evalkit/schemas``."""
    return json.loads(files("evalkit.schemas").joinpath(name).read_text(encoding="utf-8"))


def load_yaml(path: Path, error: type[Exception]) -> Any:
    """``yaml.safe_load`` a file, turning read and syntax errors into ``error`` naming file and line."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise error(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise error(f"{path}: is a folder; give the YAML file inside it") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except OSError as exc:
        raise error(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        return yaml.safe_load(text)
    except RecursionError:
        raise error(f"{path}: nested too deeply to read; simplify the YAML") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path}{where}: invalid YAML: {problem}; fix the syntax at that line") from exc


def validate_against(doc: Any, schema: dict[str, Any], where: str, error: type[Exception]) -> None:
    """Validate ``doc`` with JSON Schema; raise ``error`` for the most relevant problem, naming the field."""
    validator = jsonschema.Draft202012Validator(schema)
    best = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if best is None:
        return
    field = json_path(best.absolute_path)
    message = best.message
    if best.validator == "additionalProperties":
        allowed = sorted(best.schema.get("properties", {}))
        message += f" (allowed: {', '.join(allowed)})"
    elif best.validator == "required":
        message += "; add it"
    raise error(f"{where}: {field}: {message}")


def quiet_libraries() -> None:
    """transformers and datasets print progress bars and advice of their own; evalkit shows its own progress."""
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    # Deprecation notices from transformers/trl/peft are for evalkit's developers, not its users.
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=DeprecationWarning)
    # bitsandbytes announces at import that an optional hub-downloaded CPU kernel is missing;
    # evalkit never downloads kernels, and the built-in CPU path is used instead.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    try:
        from transformers.utils import logging as hf_logging

        hf_logging.set_verbosity_error()
        hf_logging.disable_progress_bar()
    except ImportError:
        pass


def versions() -> dict[str, str]:
    """Versions of evalkit and the libraries whose behaviour changes results."""
    from importlib.metadata import PackageNotFoundError, version

    from evalkit import __version__

    out = {"evalkit": __version__, "python": platform.python_version()}
    for pkg in ("torch", "transformers", "peft", "trl", "bitsandbytes"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            pass
    return out
