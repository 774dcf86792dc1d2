"""Where an adapter is written, and what may already be there.

Nothing finished is overwritten without asking, and an interrupted run is never
silently thrown away. Before anything is loaded, ``plan_output`` classifies the
output folder and decides where this run trains:

    missing or empty              train into it
    only checkpoints (interrupted) refuse, unless --resume (continue them) or --overwrite (start fresh)
    a finished adapter            refuse, unless --overwrite: train in a hidden sibling folder and
                                  swap it in only once the new adapter is saved, so a crash
                                  mid-training leaves the old adapter whole
    anything else                 refuse: evalkit writes adapters into new or empty folders

``prepare_output`` then makes the folder and proves it writable (still before the
model loads); ``finish_output`` does the swap.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from evalkit.errors import TrainError
from evalkit.models.adapters import TRAIN_RECORD

__all__ = ["OutputPlan", "finish_output", "last_checkpoint", "plan_output", "prepare_output"]

# Any of these means the folder holds a finished adapter (evalkit saves the record last).
FINISHED_MARKERS = ("adapter_model.safetensors", "adapter_model.bin", "adapter_config.json", TRAIN_RECORD)


@dataclass(frozen=True)
class OutputPlan:
    """Where this run trains and how its adapter reaches ``final``."""

    final: Path
    """The output_dir the user asked for."""
    work: Path
    """Where checkpoints and the new adapter are written: ``final``, or a staging sibling when replacing."""
    resume_from: str | None
    """The checkpoint ``--resume`` continues from."""
    clear_checkpoints: bool = False
    """--overwrite of an interrupted run: its checkpoints are removed before training starts."""

    @property
    def staged(self) -> bool:
        return self.work != self.final

    @property
    def checkpoints(self) -> Path:
        return self.work / "checkpoints"


def last_checkpoint(checkpoints: Path) -> str | None:
    """The newest ``checkpoint-N`` folder under ``checkpoints``, or None."""
    from transformers.trainer_utils import get_last_checkpoint

    return get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None


def plan_output(out: Path, *, resume: bool = False, overwrite: bool = False, where: str = "output_dir") -> OutputPlan:
    """Classify ``out`` and refuse what would destroy finished or interrupted work.

    Args:
        where: how the user named the folder (``output_dir`` in the config, or ``--output-dir``).

    Raises:
        TrainError: ``out`` is a file, holds a finished adapter (without ``overwrite``), holds an
            interrupted run's checkpoints (without ``resume`` or ``overwrite``), or holds other files.
    """
    if resume and overwrite:
        raise TrainError("--resume and --overwrite contradict each other: --resume continues a run, --overwrite starts afresh; pass one")
    if out.exists() and not out.is_dir():
        raise TrainError(f"{where} {out}: is a file, not a folder; choose a folder for the adapter")
    entries = sorted(p.name for p in out.iterdir()) if out.is_dir() else []
    finished = [name for name in FINISHED_MARKERS if name in entries]
    checkpoint = last_checkpoint(out / "checkpoints")
    if finished:
        if resume:
            raise TrainError(f"{where} {out}: holds a finished adapter ({finished[0]}), so there is nothing to resume; "
                             "pass --overwrite to train a new one in its place, or choose another output_dir")
        if not overwrite:
            raise TrainError(f"{where} {out}: holds a finished adapter ({finished[0]}); pass --overwrite to replace it "
                             "(it is replaced only once the new one is saved) or choose another output_dir")
        return OutputPlan(final=out, work=out.parent / f".{out.name}.evalkit-new", resume_from=None)
    if checkpoint is not None:
        if resume:
            return OutputPlan(final=out, work=out, resume_from=checkpoint)
        if not overwrite:
            raise TrainError(f"{where} {out}: holds checkpoints of an interrupted run ({Path(checkpoint).name}); "
                             "pass --resume to continue it or --overwrite to start afresh")
        return OutputPlan(final=out, work=out, resume_from=None, clear_checkpoints=True)
    if resume:
        raise TrainError(f"--resume: no checkpoint under {out / 'checkpoints'}; train without --resume to start")
    others = [name for name in entries if name != "checkpoints"]
    if others:
        raise TrainError(f"{where} {out}: is not empty and holds no adapter (e.g. {others[0]}); "
                         "choose a new or empty folder for the adapter")
    return OutputPlan(final=out, work=out, resume_from=None, clear_checkpoints="checkpoints" in entries)


def prepare_output(plan: OutputPlan, where: str = "output_dir") -> None:
    """Create the folder this run writes to and check that it is writable.

    Raises:
        TrainError: the folder cannot be created or written.
    """
    try:
        if plan.staged:
            shutil.rmtree(plan.work, ignore_errors=True)  # an earlier --overwrite that did not finish
        elif plan.clear_checkpoints:
            shutil.rmtree(plan.checkpoints)
        plan.work.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=plan.work):
            pass
    except OSError as exc:
        reason = exc.strerror or str(exc)
        raise TrainError(f"{where} {plan.final}: cannot write there ({reason}); choose a writable folder") from exc


def finish_output(plan: OutputPlan) -> None:
    """Swap a staged adapter in place of the finished one it replaces (a no-op when not staged).

    Raises:
        TrainError: the swap failed; the new adapter is left in ``plan.work``, the old one in place.
    """
    if not plan.staged:
        return
    old = plan.final.parent / f".{plan.final.name}.evalkit-old"
    shutil.rmtree(old, ignore_errors=True)
    try:
        os.rename(plan.final, old)
        try:
            os.rename(plan.work, plan.final)
        except OSError:
            os.rename(old, plan.final)  # put the old adapter back before reporting
            raise
    except OSError as exc:
        raise TrainError(f"cannot replace {plan.final} with the new adapter ({exc.strerror}); "
                         f"the new adapter is in {plan.work}, the old one untouched") from exc
    shutil.rmtree(old, ignore_errors=True)
