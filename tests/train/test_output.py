"""The output folder: what `evalkit train` may write over, and the swap that replaces a finished adapter."""

from __future__ import annotations

from pathlib import Path

import pytest

from evalkit.errors import TrainError
from evalkit.train.output import finish_output, plan_output, prepare_output


def _finished(out: Path, weights: bytes = b"old") -> Path:
    out.mkdir(parents=True)
    (out / "adapter_model.safetensors").write_bytes(weights)
    (out / "evalkit-train.json").write_text("{}")
    (out / "checkpoints" / "checkpoint-4").mkdir(parents=True)
    return out


def test_a_new_or_empty_folder_is_trained_into_directly(tmp_path):
    (tmp_path / "empty").mkdir()
    for out in (tmp_path / "new", tmp_path / "empty"):
        plan = plan_output(out)
        assert plan.work == out and not plan.staged and plan.resume_from is None


def test_a_finished_adapter_is_refused_without_overwrite(tmp_path):
    out = _finished(tmp_path / "a")
    with pytest.raises(TrainError, match="holds a finished adapter.*--overwrite"):
        plan_output(out)


def test_overwrite_trains_beside_the_finished_adapter_and_swaps_at_the_end(tmp_path):
    out = _finished(tmp_path / "a")
    plan = plan_output(out, overwrite=True)
    assert plan.staged and plan.work.parent == out.parent
    prepare_output(plan)
    (plan.work / "adapter_model.safetensors").write_bytes(b"new")
    assert (out / "adapter_model.safetensors").read_bytes() == b"old"  # untouched until the new one is saved
    finish_output(plan)
    assert (out / "adapter_model.safetensors").read_bytes() == b"new"
    assert not (out / "evalkit-train.json").exists()  # nothing of the old run is mixed in
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a"]  # no staging or old folder left behind


def test_an_unfinished_overwrite_is_discarded_by_the_next_one(tmp_path):
    out = _finished(tmp_path / "a")
    stale = plan_output(out, overwrite=True).work
    (stale / "checkpoints" / "checkpoint-1").mkdir(parents=True)
    plan = plan_output(out, overwrite=True)
    prepare_output(plan)
    assert plan.work.is_dir() and not any(plan.work.iterdir())


def test_interrupted_checkpoints_need_resume_or_overwrite(tmp_path):
    out = tmp_path / "a"
    (out / "checkpoints" / "checkpoint-2").mkdir(parents=True)
    with pytest.raises(TrainError, match="interrupted run.*--resume.*--overwrite"):
        plan_output(out)
    assert plan_output(out, resume=True).resume_from == str(out / "checkpoints" / "checkpoint-2")
    fresh = plan_output(out, overwrite=True)
    prepare_output(fresh)
    assert fresh.work == out and not (out / "checkpoints").exists()


def test_resume_of_a_finished_adapter_is_refused(tmp_path):
    with pytest.raises(TrainError, match="nothing to resume"):
        plan_output(_finished(tmp_path / "a"), resume=True)


def test_a_folder_with_other_files_is_refused_even_with_overwrite(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "notes.txt").write_text("mine")
    for overwrite in (False, True):
        with pytest.raises(TrainError, match="not empty and holds no adapter"):
            plan_output(tmp_path / "a", overwrite=overwrite)


def test_an_unwritable_place_is_refused_before_training(tmp_path):
    (tmp_path / "file").write_text("x")
    plan = plan_output(tmp_path / "file" / "adapter")
    with pytest.raises(TrainError, match="cannot write there"):
        prepare_output(plan)
