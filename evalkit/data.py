"""Rows → items → chat messages.

Rows come from a JSONL or CSV file next to the suite, or from a Hugging Face
``datasets`` spec (offline unless the network is allowed). Every item gets a
stable id. Prompts are rendered with a sandboxed Jinja2 environment with strict
undefined, so a template field missing from a row is an error naming the row.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from evalkit._util import canonical_json, json_lines, sha256_text
from evalkit.errors import DataError, SuiteError
from evalkit.records import Item
from evalkit.suite import DataSpec, PromptSpec

__all__ = ["Renderer", "load_items", "load_rows"]


def load_rows(spec: DataSpec, *, allow_network: bool = False) -> list[dict[str, Any]]:
    """Read the rows a ``DataSpec`` names.

    Raises:
        DataError: a missing or unreadable file, a malformed line, or an unavailable dataset.
    """
    if spec.path is not None:
        rows = _read_file(spec.path)
    else:
        rows = _read_hf(spec.hf or {}, allow_network)
    return rows[: spec.limit] if spec.limit else rows


def _read_file(path: Path) -> list[dict[str, Any]]:
    try:
        return _read_file_unchecked(path)
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8") from None
    except IsADirectoryError:
        raise DataError(f"{path}: is a folder; data.path must name a .jsonl or .csv file") from None
    except OSError as exc:
        raise DataError(f"{path}: cannot read the data file ({exc.strerror or exc}); check its permissions") from None
    except csv.Error as exc:
        raise DataError(f"{path}: not valid CSV ({exc}); check quoting") from None


def _read_file_unchecked(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        raise DataError(f"{path}: data file not found; data.path is relative to the suite file")
    if path.is_dir():  # before the suffix: "rows/" or "." is a folder, not an unsupported format
        raise DataError(f"{path}: is a folder; data.path must name a .jsonl or .csv file")
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        rows = []
        text = path.read_text(encoding="utf-8-sig")  # -sig: tolerate a byte-order mark
        for lineno, row in json_lines(text, path, DataError, "each line must be one JSON object"):
            if not isinstance(row, dict):
                raise DataError(f"{path}:{lineno}: each line must be a JSON object, got {type(row).__name__}")
            rows.append(row)
        return rows
    if suffix == ".csv":
        with path.open(encoding="utf-8-sig", newline="") as fh:  # -sig: spreadsheets write a byte-order mark
            # strict: an unbalanced quote is an error, not a field that swallows the rest of the file
            reader = csv.DictReader(fh, strict=True)
            header = reader.fieldnames or []
            dupes = sorted({h for h in header if header.count(h) > 1})
            if dupes:  # DictReader would silently keep the last column of each name
                raise DataError(f"{path}:1: the header names {', '.join(repr(d) for d in dupes)} more than once; give each column a unique name")
            rows = []
            records = iter(reader)
            while True:
                try:
                    r = next(records)
                except StopIteration:
                    break
                except csv.Error as exc:
                    raise DataError(f"{path}:{reader.line_num}: not valid CSV ({exc}); check the quoting on or before that line") from None
                if None in r:  # DictReader puts values beyond the header under the key None
                    raise DataError(
                        f"{path}:{reader.line_num}: more values than the header's {len(header)} columns; "
                        f"quote values that contain commas"
                    )
                if None in r.values():  # ... and fills a short row's missing columns with None
                    raise DataError(f"{path}:{reader.line_num}: fewer values than the header's {len(header)} columns; fill in every column")
                rows.append(dict(r))
            return rows
    raise DataError(f"{path}: unsupported data format {suffix!r}; use .jsonl or .csv, or an hf: dataset spec")


def _read_hf(hf: dict[str, Any], allow_network: bool) -> list[dict[str, Any]]:
    import datasets

    if not allow_network:
        datasets.config.HF_HUB_OFFLINE = True
    try:
        ds = datasets.load_dataset(hf["path"], hf.get("name"), split=hf.get("split", "test"), revision=hf.get("revision"))
    except Exception as exc:  # datasets raises many types; all mean "cannot load this spec"
        hint = "" if allow_network else " (offline: pass --allow-network to download)"
        raise DataError(f"dataset {hf['path']!r}: cannot load: {str(exc).splitlines()[0]}{hint}") from exc
    return [dict(r) for r in ds]


def load_items(spec: DataSpec, where: str, *, allow_network: bool = False) -> list[Item]:
    """Rows with stable ids (``id_field``, or a hash of the row's canonical JSON).

    Raises:
        DataError: rows without the id field, or duplicate ids.
    """
    rows = load_rows(spec, allow_network=allow_network)
    if not rows:
        source = spec.path if spec.path is not None else f"dataset {(spec.hf or {}).get('path')!r}"
        raise DataError(f"{where}: the data has no rows ({source}); add rows or fix data.path")
    items: list[Item] = []
    seen: dict[str, int] = {}
    for i, row in enumerate(rows):
        if spec.id_field:
            if spec.id_field not in row:
                raise DataError(f"{where}: row {i + 1} has no id field {spec.id_field!r} (data.id_field); add it or drop id_field")
            value = row[spec.id_field]
            if value is None or isinstance(value, (dict, list, bool)):
                raise DataError(f"{where}: row {i + 1}: id field {spec.id_field!r} (data.id_field) is {value!r}; ids must be strings or numbers")
            item_id = str(value)
        else:
            item_id = sha256_text(canonical_json(row))[:12]
        if item_id in seen:
            raise DataError(f"{where}: rows {seen[item_id] + 1} and {i + 1} share the id {item_id!r}; ids must be unique")
        seen[item_id] = i
        if spec.cluster_field and spec.cluster_field not in row:
            raise DataError(f"{where}: row {i + 1} has no cluster field {spec.cluster_field!r} (data.cluster_field); add it or drop cluster_field")
        cluster = row.get(spec.cluster_field) if spec.cluster_field else None
        items.append(Item(id=item_id, row=row, cluster=None if cluster is None else str(cluster)))
    return items


class Renderer:
    """Renders a suite's prompt templates for one item, in a sandbox with strict undefined.

    A field the template uses must be in the row and not null (a JSON ``null`` would
    otherwise render as the text ``None``); a template that fails while rendering
    (``{{ 1/0 }}``, ``{{ text + 1 }}``, ``{% include %}``) is a ``DataError`` naming the
    template, the item and the fix.
    """

    def __init__(self, prompt: PromptSpec, where: str) -> None:
        self._env = ImmutableSandboxedEnvironment(
            undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False, finalize=_refuse_none
        )
        self._where = where
        self._templates: dict[str, tuple[jinja2.Template, set[str]]] = {}
        for part in ("system", "user", "target"):
            source = getattr(prompt, part)
            if source is None:
                continue
            try:
                self._templates[part] = (self._env.from_string(source), jinja2.meta.find_undeclared_variables(self._env.parse(source)))
            except jinja2.TemplateSyntaxError as exc:
                raise SuiteError(f"{where}: prompt.{part}: template syntax error at line {exc.lineno}: {exc.message}") from None

    def fields(self, part: str = "user") -> set[str]:
        """Row fields a template refers to."""
        return set(self._templates[part][1]) if part in self._templates else set()

    def _render(self, part: str, item: Item) -> str:
        template, used = self._templates[part]
        where = f"{self._where}: prompt.{part}: item {item.id!r}"
        nulls = sorted(f for f in used if f in item.row and item.row[f] is None)
        if nulls:
            raise DataError(f"{where}: field {nulls[0]!r} is null; give it a value or drop the row")
        try:
            return template.render(**item.row).strip()
        except jinja2.UndefinedError as exc:
            fields = ", ".join(sorted(item.row)) or "(none)"
            raise DataError(f"{where}: {exc.message}; the row has fields: {fields}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise DataError(f"{where}: refused by the template sandbox: {exc}") from None
        except _NullValue:
            raise DataError(f"{where}: an expression in the template is null (e.g. a nested field that is null); give it a value or drop the row") from None
        except Exception as exc:  # the template's own code failed on this row: the suite's mistake, not evalkit's
            hint = "templates cannot include or import other files" if "loader" in str(exc) else "fix the template"
            raise DataError(f"{where}: the template failed: {type(exc).__name__}: {exc}; {hint}") from None

    def messages(self, item: Item) -> list[dict[str, str]]:
        """The chat messages (system, user) for ``item``."""
        out = []
        if "system" in self._templates:
            out.append({"role": "system", "content": self._render("system", item)})
        user = self._render("user", item)
        if not user:  # a model asked nothing answers nothing useful; the suite or the row is wrong
            raise DataError(f"{self._where}: prompt.user: item {item.id!r} renders to an empty message; check the template and the row's fields")
        out.append({"role": "user", "content": user})
        return out

    def target(self, item: Item) -> str:
        """The reference answer (``prompt.target``), for training examples."""
        if "target" not in self._templates:
            raise SuiteError(f"{self._where}: prompt.target is needed to build training examples from rows; add it")
        return self._render("target", item)


class _NullValue(Exception):
    """An expression in a template rendered None."""


def _refuse_none(value: Any) -> Any:
    """Jinja ``finalize``: an expression that renders None (a null nested field) is an error, not the text 'None'."""
    if value is None:
        raise _NullValue
    return value
