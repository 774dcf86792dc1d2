"""Small helpers shared across evalkit: hashing, atomic writes, schema validation."""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import platform
import re
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from importlib.resources import files
from pathlib import Path
from typing import Any

import jsonschema
import yaml

__all__ = [
    "atomic_write",
    "canonical_json",
    "check_writable_dir",
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


def json_lines(text: str, where: object, error: type[Exception], fix: str) -> Iterator[tuple[int, Any]]:
    """``(line number, decoded value)`` for each non-blank line of a JSONL text.

    Raises:
        error: a line that is not JSON, as ``where:LINE: not valid JSON (...); fix``.
    """
    for lineno, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        try:
            yield lineno, json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{where}:{lineno}: not valid JSON ({exc.msg}); {fix}") from None


def package_schema(name: str) -> dict[str, Any]:
    """Load one of the JSON Schemas shipped in ``evalkit/schemas``."""
    return json.loads(files("evalkit.schemas").joinpath(name).read_text(encoding="utf-8"))


class _Loader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with two mistakes made loud instead of silent.

    * A key given twice in one mapping is an error (PyYAML keeps the last one, so a second
      ``metrics:`` or ``generation:`` section would silently replace the first).
    * ``1e-3`` and ``2e-4`` are numbers, as in YAML 1.2 and JSON (PyYAML's YAML 1.1 rules
      need a dot, ``1.0e-3``, and read ``2e-4`` as the *string* "2e-4").
    """


class _DuplicateKey(yaml.constructor.ConstructorError):
    """A mapping names one key twice."""


def _construct_mapping(loader: _Loader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=True)
        try:
            if key in seen:
                raise _DuplicateKey(None, None, f"the key {key!r} is given twice (first on line {seen[key] + 1}); keep one of them", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        except TypeError:  # an unhashable key (a list or mapping used as a key): let PyYAML report it
            pass
    return loader.construct_mapping(node, deep=deep)


_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*)(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
    list("-+0123456789"),
)


def load_yaml(path: Path, error: type[Exception]) -> Any:
    """Read a YAML file safely (no tags that build objects), turning read and syntax errors into ``error`` naming file and line.

    Duplicate keys are refused and ``1e-3`` is a number (see ``_Loader``).
    """
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
        return yaml.load(text, Loader=_Loader)  # noqa: S506  (_Loader is a SafeLoader)
    except RecursionError:
        raise error(f"{path}: nested too deeply to read; simplify the YAML") from None
    except _DuplicateKey as exc:
        mark = exc.problem_mark
        raise error(f"{path}:{mark.line + 1}:{mark.column + 1}: {exc.problem}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise error(f"{path}{where}: invalid YAML: {problem}; fix the syntax at that line") from exc


def _non_finite(doc: Any, parts: tuple[Any, ...] = ()) -> tuple[tuple[Any, ...], float] | None:
    """The path and value of the first NaN or infinity in a parsed document, if any."""
    if isinstance(doc, float) and not math.isfinite(doc):
        return parts, doc
    if isinstance(doc, dict):
        items: Iterable[tuple[Any, Any]] = doc.items()
    elif isinstance(doc, list):
        items = enumerate(doc)
    else:
        return None
    for key, value in items:
        found = _non_finite(value, (*parts, key))
        if found:
            return found
    return None


def _strict_integer(checker: Any, instance: Any) -> bool:
    """JSON Schema's "integer" without floats: ``limit: 2.0`` would slice, count and key as a float."""
    return isinstance(instance, int) and not isinstance(instance, bool)


_Validator = jsonschema.validators.extend(
    jsonschema.Draft202012Validator,
    type_checker=jsonschema.Draft202012Validator.TYPE_CHECKER.redefine("integer", _strict_integer),
)


def _one_of_message(error: Any) -> str | None:
    """``give one of path, hf`` (or ``give only one of ...``) for a oneOf/anyOf over required keys, instead of
    jsonschema's "is not valid under any of the given schemas"."""
    branches = error.schema.get(error.validator, [])
    keys = [b["required"][0] for b in branches if set(b) == {"required"} and len(b["required"]) == 1]
    if len(keys) != len(branches) or not isinstance(error.instance, dict):
        return None
    given = [k for k in keys if k in error.instance]
    if given:
        return f"give only one of {', '.join(keys)} (found {', '.join(given)})"
    return f"give one of {', '.join(keys)}"


def validate_against(doc: Any, schema: dict[str, Any], where: str, error: type[Exception], prefix: tuple[str, ...] = ()) -> None:
    """Validate ``doc`` with JSON Schema; raise ``error`` for the most relevant problem, naming the field.

    Beyond the schema: no value anywhere may be NaN or infinite (YAML's ``.nan``/``.inf``), and an
    integer field takes no float (``2.0``).

    Args:
        prefix: where ``doc`` sits in its file (``("gate",)`` for a suite's gate section), for field names.
    """
    bad = _non_finite(doc)
    if bad is not None:
        raise error(f"{where}: {json_path((*prefix, *bad[0]))}: {bad[1]} is not a finite number; give a number")
    validator = _Validator(schema)
    best = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if best is None:
        return
    field = json_path((*prefix, *best.absolute_path))
    message = best.message
    if best.validator == "additionalProperties":
        allowed = sorted(best.schema.get("properties", {}))
        message += f" (allowed: {', '.join(allowed)})"
    elif best.validator == "required":
        message += "; add it"
    elif best.validator in ("oneOf", "anyOf"):
        message = _one_of_message(best) or message
    raise error(f"{where}: {field}: {message}")


def check_writable_dir(path: Path, what: str, error: type[Exception] | None = None) -> None:
    """Refuse, before any work, a folder that is a file or cannot be written (creating it if missing).

    Raises:
        error (``RunDirError`` unless given): naming the option and the fix.
    """
    if error is None:
        from evalkit.errors import RunDirError

        error = RunDirError
    if path.exists() and not path.is_dir():
        raise error(f"{what} {path}: is a file, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".evalkit-write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise error(f"{what} {path}: cannot write there ({exc.strerror or exc}); give a writable folder") from None


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
