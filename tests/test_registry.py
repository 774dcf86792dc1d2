"""The registry: lookups, the @metric decorator, base_dir injection, and entry-point plugins."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import evalkit.metrics  # noqa: F401  (registers the built-in metrics)
from evalkit import registry
from evalkit.errors import MetricError, SuiteError
from evalkit.metrics import build_metric, metric
from evalkit.records import Item, Score
from evalkit.suite import MetricSpec, load_suite

BUILTINS = ["exact_match", "faithfulness", "field_match", "grounded_fields", "json_schema", "json_valid", "judge", "pairwise", "regex"]


@pytest.fixture(autouse=True)
def isolated_registry(monkeypatch):
    """Registrations made by a test disappear after it; plugins count as not yet loaded."""
    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    monkeypatch.setattr(registry, "_PLUGINS_LOADED", set())
    monkeypatch.setattr(registry, "_PLUGIN_FAILURES", {})
    monkeypatch.setattr(registry, "entry_points", lambda group: [])


class FakeEntryPoint:
    def __init__(self, name: str, load: Any) -> None:
        self.name = name
        self.value = f"fake_plugin_module:{name}"
        self._load = load
        self.loads = 0

    def load(self) -> Any:
        self.loads += 1
        return self._load()


def suite_using(folder: Path, metric_yaml: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "data.jsonl").write_text('{"id": "a", "report": "x"}\n')
    path = folder / "s.yaml"
    path.write_text(
        "name: s\ndata: {path: data.jsonl, id_field: id}\nprompt: {user: '{{ report }}'}\nmetrics:\n" + metric_yaml
    )
    return path


# --- lookups -------------------------------------------------------------------------


def test_lookup_miss_lists_the_known_names():
    with pytest.raises(MetricError) as info:
        registry.lookup("metric", "no_such_metric")

    assert str(info.value) == f"unknown metric 'no_such_metric'; known metrics: {', '.join(BUILTINS)}"


def test_lookup_miss_for_an_empty_kind_says_none():
    with pytest.raises(MetricError, match=r"known widgets: \(none\)"):
        registry.lookup("widget", "x")


def test_names_are_sorted_and_include_the_builtins():
    assert registry.names("metric") == BUILTINS


def test_registering_a_name_again_replaces_the_entry():
    registry.register("metric", "test_registry_twice", object(), binary=False)
    second = object()
    registry.register("metric", "test_registry_twice", second, binary=True)

    entry = registry.lookup("metric", "test_registry_twice")
    assert entry.obj is second
    assert entry.info["binary"] is True


# --- @metric and build_metric --------------------------------------------------------


def test_metric_decorator_records_binary_and_the_docstring_first_line():
    @metric("test_registry_described", binary=True)
    def described():
        """Scores everything 1.

        More words that are not the description.
        """
        return lambda output, item: Score(1.0)

    info = registry.lookup("metric", "test_registry_described").info
    assert info == {"binary": True, "description": "Scores everything 1.", "needs_model": False}


def test_metric_registered_in_a_test_is_usable_from_a_suite(tmp_path):
    @metric("test_registry_shorter_than", binary=True)
    def shorter_than(limit: int = 200):
        def score(output: str, item: Item) -> Score:
            return Score(float(len(output) < limit), detail=f"{len(output)} chars")

        return score

    suite = load_suite(suite_using(tmp_path, "  - {name: short, type: test_registry_shorter_than, params: {limit: 5}}\n"))
    built = build_metric(suite.metrics[0], suite.dir)

    assert built.binary is True
    assert built.score("abc", Item(id="a", row={})) == Score(1.0, detail="3 chars")
    assert built.score("abcdef", Item(id="a", row={})).value == 0.0


def test_suite_reports_an_unknown_param_of_a_registered_metric(tmp_path):
    @metric("test_registry_strict")
    def strict(limit: int = 1):
        return lambda output, item: Score(1.0)

    path = suite_using(tmp_path, "  - {name: m, type: test_registry_strict, params: {limt: 5}}\n")

    with pytest.raises(SuiteError, match=r"metrics\[0\] \(m\): params: .*'limt'.*accepts: limit"):
        load_suite(path)


def test_base_dir_is_passed_when_the_factory_declares_it(tmp_path):
    seen: dict[str, Any] = {}

    @metric("test_registry_with_base_dir")
    def with_base_dir(file: str, *, base_dir: Path):
        seen["path"] = base_dir / file
        return lambda output, item: Score(1.0)

    build_metric(MetricSpec(name="m", type="test_registry_with_base_dir", params={"file": "x.txt"}), tmp_path)

    assert seen["path"] == tmp_path / "x.txt"


def test_base_dir_is_not_passed_when_the_factory_does_not_declare_it(tmp_path):
    @metric("test_registry_without_base_dir")
    def without_base_dir(limit: int = 1):
        return lambda output, item: Score(1.0)

    built = build_metric(MetricSpec(name="m", type="test_registry_without_base_dir", params={}), tmp_path)

    assert built.params == {}
    assert built.score("x", Item(id="a", row={})) == Score(1.0)


def test_base_dir_is_not_listed_among_accepted_params(tmp_path):
    @metric("test_registry_lists_params")
    def lists_params(schema: str, *, base_dir: Path):
        return lambda output, item: Score(1.0)

    with pytest.raises(MetricError, match=r"accepts: schema$"):
        build_metric(MetricSpec(name="m", type="test_registry_lists_params", params={"schemma": "x"}), tmp_path)


def test_value_error_from_a_factory_becomes_a_metric_error(tmp_path):
    @metric("test_registry_picky")
    def picky(n: int = 0):
        if n < 0:
            raise ValueError(f"n={n} must be >= 0")
        return lambda output, item: Score(1.0)

    with pytest.raises(MetricError, match=r"params: n=-1 must be >= 0"):
        build_metric(MetricSpec(name="m", type="test_registry_picky", params={"n": -1}), tmp_path)


# --- plugins -------------------------------------------------------------------------


def test_plugin_entry_point_is_loaded_when_a_name_is_not_a_builtin(monkeypatch):
    def load() -> None:
        @metric("test_registry_plugin_metric")
        def plugin_metric():
            return lambda output, item: Score(1.0)

    ep = FakeEntryPoint("plugin_metric", load)
    groups: list[str] = []

    def fake_entry_points(*, group: str) -> list[FakeEntryPoint]:
        groups.append(group)
        return [ep] if group == "evalkit.metrics" else []

    monkeypatch.setattr(registry, "entry_points", fake_entry_points)

    entry = registry.lookup("metric", "test_registry_plugin_metric")

    assert entry.name == "test_registry_plugin_metric"
    assert groups == ["evalkit.metrics"]
    assert ep.loads == 1


def test_plugins_are_not_loaded_for_a_builtin_lookup(monkeypatch):
    def no_entry_points(*, group: str) -> list[Any]:
        raise AssertionError("plugins were loaded for a built-in")

    monkeypatch.setattr(registry, "entry_points", no_entry_points)

    assert registry.lookup("metric", "json_valid").name == "json_valid"


def test_plugins_are_loaded_only_once(monkeypatch):
    ep = FakeEntryPoint("nothing", lambda: None)
    monkeypatch.setattr(registry, "entry_points", lambda *, group: [ep])

    for _ in range(3):
        with pytest.raises(MetricError):
            registry.lookup("metric", "test_registry_absent")

    assert ep.loads == 1


def test_plugin_that_fails_to_import_is_a_metric_error_naming_it(monkeypatch):
    def load() -> None:
        raise ImportError("No module named 'torchvision'")

    monkeypatch.setattr(registry, "entry_points", lambda *, group: [FakeEntryPoint("broken", load)])

    with pytest.raises(MetricError, match=r"plugin 'broken' \(fake_plugin_module:broken\) failed to import: No module named"):
        registry.lookup("metric", "test_registry_absent")


# --- broken plugins (review fix 4) ---------------------------------------------------
# Before the fix, _load_plugins raised on the first broken entry point: every lookup miss
# (and names()) raised that plugin's error, and since the kind was already marked loaded,
# the plugins after it were never imported at all.


def _register_on_load(metric_name: str):
    def load() -> None:
        @metric(metric_name)
        def factory():
            return lambda output, item: Score(1.0)

    return load


def _broken(message: str = "No module named 'torchvision'", exc_type: type[Exception] = ImportError):
    def load() -> None:
        raise exc_type(message)

    return load


def test_broken_plugin_does_not_stop_the_plugins_after_it(monkeypatch):
    broken = FakeEntryPoint("broken", _broken())
    good = FakeEntryPoint("good", _register_on_load("test_registry_good_plugin"))
    monkeypatch.setattr(registry, "entry_points", lambda *, group: [broken, good])

    entry = registry.lookup("metric", "test_registry_good_plugin")

    assert entry.name == "test_registry_good_plugin"
    assert (broken.loads, good.loads) == (1, 1)


def test_lookup_miss_lists_known_names_and_names_the_broken_plugin(monkeypatch):
    broken = FakeEntryPoint("broken", _broken())
    good = FakeEntryPoint("good", _register_on_load("test_registry_good_plugin"))
    monkeypatch.setattr(registry, "entry_points", lambda *, group: [broken, good])

    with pytest.raises(MetricError) as info:
        registry.lookup("metric", "test_registry_absent")

    known = ", ".join(sorted([*BUILTINS, "test_registry_good_plugin"]))
    assert str(info.value) == (
        f"unknown metric 'test_registry_absent'; known metrics: {known}; "
        "plugin 'broken' (fake_plugin_module:broken) failed to import: No module named 'torchvision'; "
        "fix or uninstall it"
    )


def test_every_broken_plugin_is_named_in_entry_point_order(monkeypatch):
    eps = [
        FakeEntryPoint("zeta", _broken()),
        FakeEntryPoint("alpha", _broken("bad config", RuntimeError)),
    ]
    monkeypatch.setattr(registry, "entry_points", lambda *, group: eps)

    with pytest.raises(MetricError) as info:
        registry.lookup("metric", "test_registry_absent")

    message = str(info.value)
    assert "plugin 'zeta' (fake_plugin_module:zeta) failed to import: No module named 'torchvision'" in message
    assert "plugin 'alpha' (fake_plugin_module:alpha) failed to import: RuntimeError: bad config" in message
    assert message.index("'zeta'") < message.index("'alpha'")


def test_names_does_not_raise_for_a_broken_plugin(monkeypatch):
    broken = FakeEntryPoint("broken", _broken())
    good = FakeEntryPoint("good", _register_on_load("test_registry_good_plugin"))
    monkeypatch.setattr(registry, "entry_points", lambda *, group: [broken, good])

    assert registry.names("metric") == sorted([*BUILTINS, "test_registry_good_plugin"])


def test_broken_plugin_is_tried_once_and_still_reported_on_later_misses(monkeypatch):
    broken = FakeEntryPoint("broken", _broken())
    monkeypatch.setattr(registry, "entry_points", lambda *, group: [broken])

    for _ in range(3):
        with pytest.raises(MetricError, match=r"plugin 'broken' .* failed to import"):
            registry.lookup("metric", "test_registry_absent")

    assert broken.loads == 1
    assert registry.lookup("metric", "json_valid").name == "json_valid"


def test_lookup_miss_without_broken_plugins_mentions_none(monkeypatch):
    monkeypatch.setattr(registry, "entry_points", lambda *, group: [FakeEntryPoint("fine", lambda: None)])

    with pytest.raises(MetricError) as info:
        registry.lookup("metric", "test_registry_absent")

    assert "plugin" not in str(info.value)


def test_unreadable_entry_points_do_not_break_names(monkeypatch):
    def unreadable(*, group: str) -> list[Any]:
        raise OSError("bad METADATA")

    monkeypatch.setattr(registry, "entry_points", unreadable)

    assert registry.names("metric") == BUILTINS
    with pytest.raises(MetricError, match=r"could not be read: OSError: bad METADATA"):
        registry.lookup("metric", "test_registry_absent")
