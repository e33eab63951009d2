"""The PNGs of the report: learning curves per env, and the aggregate across envs."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers and CI
import matplotlib.pyplot as plt

if TYPE_CHECKING:
    from report.records import AggregateStats, Curve

__all__ = ["agent_colors", "plot_aggregate", "plot_curves"]


def agent_colors(agents: Iterable[str]) -> dict[str, str]:
    """One matplotlib colour per agent (sorted), so an agent keeps its colour across the PNGs."""
    return {agent: f"C{i % 10}" for i, agent in enumerate(sorted(set(agents)))}


def plot_curves(
    curves: Mapping[str, Curve],
    env: str,
    tag: str,
    threshold: float | None,
    path: str | Path,
    colors: Mapping[str, str] | None = None,
) -> Path:
    """One env: each agent's mean curve against env steps, with its 95% CI band."""
    colors = colors or agent_colors(curves)
    fig, ax = plt.subplots(figsize=(7, 4.2))
    try:
        for agent, curve in sorted(curves.items()):
            ax.plot(curve.steps, curve.mean, label=agent, lw=1.6, color=colors[agent])
            ax.fill_between(curve.steps, curve.low, curve.high, color=colors[agent], alpha=0.2, lw=0)
        if threshold is not None:
            ax.axhline(threshold, color="grey", ls="--", lw=0.8, label=f"threshold {threshold:g}")
        ax.set(title=env, xlabel="env steps", ylabel=tag)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="best")
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return Path(path)


def plot_aggregate(
    aggregate: Sequence[AggregateStats], path: str | Path, colors: Mapping[str, str] | None = None
) -> Path:
    """Each agent's IQM of normalised final returns with its 95% CI, as a horizontal interval."""
    colors = colors or agent_colors(a.agent for a in aggregate)
    rows = sorted(aggregate, key=lambda a: a.iqm)
    fig, ax = plt.subplots(figsize=(6, 1.2 + 0.45 * len(rows)))
    try:
        for y, agg in enumerate(rows):
            color = colors[agg.agent]
            ax.plot(agg.iqm_ci, [y, y], lw=6, alpha=0.35, color=color, solid_capstyle="butt")
            ax.plot([agg.iqm], [y], "|", ms=14, mew=2, color=color)
        ax.set_yticks(range(len(rows)), [a.agent for a in rows])
        envs = rows[0].num_envs if rows else 0
        ax.set(
            xlabel=f"IQM of min-max normalised final return ({envs} envs), 95% CI",
            ylim=(-0.7, len(rows) - 0.3),
        )
        ax.grid(axis="x", alpha=0.3)
        fig.tight_layout()
        fig.savefig(path, dpi=120)
    finally:
        plt.close(fig)
    return Path(path)
