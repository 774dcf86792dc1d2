"""The forest plot: each metric's Δ with its 95% CI, one row per metric and adapter."""

from __future__ import annotations

import math
from pathlib import Path

from evalkit.records import Summary

__all__ = ["forest_plot"]


def forest_plot(summary: Summary, path: Path) -> Path | None:
    """Draw Δ ± CI for every (metric, adapter) as a PNG; returns None when there is nothing to plot.

    Forgetting panels add one row each (their primary metric), labelled ``forgetting: <panel>/<metric>``.
    """
    rows = [d for d in summary.deltas if not math.isnan(d.delta)]
    if summary.forgetting:
        primary = {f"{p.name}/{p.primary}" for p in summary.forgetting.panels}
        rows += [d for d in summary.forgetting.deltas if d.metric in primary and not math.isnan(d.delta)]
    forgetting = {id(d) for d in summary.forgetting.deltas} if summary.forgetting else set()
    if not rows:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(rows) + 1.4), dpi=120)
    labels = []
    for y, d in enumerate(reversed(rows)):
        color = ("#1a7f37" if d.delta > 0 else "#cf222e") if d.significant else "#57606a"
        if math.isnan(d.ci_low) or math.isnan(d.ci_high):  # no CI: a hollow point, labelled, never a confident dot
            ax.plot(d.delta, y, "o", markerfacecolor="white", markeredgecolor=color, markersize=7)
            label = f"{d.delta:+.3f} (no CI: n too small)"
        else:
            ax.errorbar(d.delta, y, xerr=[[d.delta - d.ci_low], [d.ci_high - d.delta]], fmt="o", color=color, capsize=4, markersize=6)
            label = f"{d.delta:+.3f}"
        ax.annotate(label, (d.delta, y), textcoords="offset points", xytext=(0, 7), ha="center", fontsize=8, color=color)
        name = f"forgetting: {d.metric}" if id(d) in forgetting else d.metric
        labels.append(name if len({r.arm for r in rows}) == 1 else f"{name} · {d.arm}")
    ax.axvline(0, color="black", linewidth=0.8, linestyle="--")
    ax.set_yticks(range(len(rows)), labels)
    ax.set_ylim(-0.7, len(rows) - 0.3)
    ax.set_xlabel(f"Δ (adapter − {summary.reference}) with 95% CI")
    ax.set_title(f"{summary.suite}: paired differences (green/red = significant after Holm)", fontsize=10)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path
