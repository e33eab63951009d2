"""Writing the report: summary.md, summary.json, summary.csv, one PNG of curves per env and the
aggregate's PNG."""

from __future__ import annotations

import csv
import datetime
import json
import os
import platform
import re
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from report.plots import agent_colors, plot_aggregate, plot_curves
from report.records import EVALUATION_FILE, FINAL_FRACTION, AgentStats, CellCount, Run, Summary, group_runs
from report.references import references_markdown
from report.stats import mean_curve
from report.targets import Target, TargetResult, evaluate, targets_markdown, verdicts

__all__ = ["machine_info", "plot_name", "write_report"]


def machine_info() -> dict[str, Any]:
    """Where and when the report was made: UTC date, platform, CPU count, Python, git commit."""
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "commit": _git_commit(),
    }


def _git_commit() -> str | None:
    """This checkout's commit, with ``+dirty`` when tracked files have uncommitted changes."""
    root = Path(__file__).resolve().parents[1]
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short=10", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if head.returncode != 0:
        return None
    return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")


def plot_name(env: str) -> str:
    """File name of an env's curves PNG."""
    return "curves_" + (re.sub(r"[^A-Za-z0-9._-]+", "_", env).strip("_") or "env") + ".png"


def write_report(
    summary: Summary,
    runs: Sequence[Run],
    out: str | Path,
    command: str | None = None,
    num_points: int = 100,
    seed: int = 0,
    targets: Sequence[Target] = (),
) -> list[Path]:
    """Write summary.md, summary.json, summary.csv, one curves PNG per env and aggregate.png.

    Returns the paths written. ``command`` (the command line that made the report) goes into
    the markdown header; ``targets`` (report/targets.py) are checked into a "Targets" section.
    """
    checked = evaluate(targets, summary, runs)

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    meta = machine_info()
    groups = group_runs(runs)
    colors = agent_colors(agent for _, agent in groups)
    written = []
    for env in sorted({env for env, _ in groups}):
        curves = {
            agent: mean_curve(rs, num_points, summary.reps, seed)
            for (e, agent), rs in groups.items()
            if e == env
        }
        written.append(
            plot_curves(curves, env, summary.tag, summary.threshold_for(env), out / plot_name(env), colors)
        )
    if summary.aggregate:
        written.append(plot_aggregate(summary.aggregate, out / "aggregate.png", colors))
    payload = {
        "meta": meta,
        "command": command,
        "tag": summary.tag,
        "final_fraction": FINAL_FRACTION,
        "thresholds": summary.thresholds,
        "reps": summary.reps,
        "rows": [asdict(row) for row in summary.rows],
        "aggregate": [asdict(agg) for agg in summary.aggregate],
        "aggregate_envs": summary.aggregate_envs,
        "bounds": {
            env: {"low": low, "high": high, "source": summary.bounds_source[env]}
            for env, (low, high) in summary.bounds.items()
        },
        "notes": summary.notes,
        "references": [asdict(ref) for ref in summary.references],
        "cells": [asdict(count) for count in summary.cells],
        "targets": [asdict(result) for result in checked],
        "verdicts": verdicts(checked, targets),
        "runs": [
            {"path": str(r.path), "env": r.env, "agent": r.agent, "seed": r.seed, "final": r.final,
             "last_step": int(r.steps[-1]), "points": len(r.steps), "labels_from": r.source,
             "greedy": r.greedy}
            for rs in groups.values()
            for r in rs
        ],
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(payload, indent=2) + "\n")
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        lists = ("final_ci", "seeds", "finals", "greedy")
        columns = [k for k in AgentStats.__dataclass_fields__ if k not in lists]
        writer.writerow([*columns, "final_ci_low", "final_ci_high", "seeds", "finals", "greedy"])
        for row in summary.rows:
            values = asdict(row)
            writer.writerow(
                [*(values[k] for k in columns), *row.final_ci, " ".join(map(str, row.seeds)),
                 " ".join(f"{x:.6g}" for x in row.finals), " ".join(f"{x:.6g}" for x in row.greedy)]
            )  # fmt: skip
    (out / "summary.md").write_text(_markdown(summary, meta, command, checked, targets))
    return [out / "summary.md", out / "summary.json", out / "summary.csv", *written]


def _waiting(count: CellCount) -> str:
    """``2 running, 1 pending`` (the parts that are not zero), or ``all done``."""
    parts = [f"{n} {status}" for status, n in (("running", count.running), ("pending", count.pending)) if n]
    return ", ".join(parts) or "all done"


def _overview_cell(row: AgentStats | None, count: CellCount | None) -> str:
    waiting = 0 if count is None else count.running + count.pending
    if row is None:
        return "pending" if waiting else "–"
    return f"{row.final_mean:.3f} ({row.worst:.3f})" + (f" +{waiting} pending" if waiting else "")


def _greedy_cell(row: AgentStats | None) -> str:
    """``mean (worst)`` of the seeds' greedy evaluations, ``, k/n seeds`` when some have none."""
    if row is None or not row.greedy:
        return "–"
    some = "" if len(row.greedy) == row.num_seeds else f", {len(row.greedy)}/{row.num_seeds} seeds"
    return f"{sum(row.greedy) / len(row.greedy):.3f} ({min(row.greedy):.3f}){some}"


def _greedy_overview(summary: Summary, envs: Sequence[str], agents: Sequence[str]) -> list[str]:
    """The greedy evaluations per env and agent beside the references (none without evaluations)."""
    if not any(row.greedy for row in summary.rows):
        return []
    by_key = {(row.env, row.agent): row for row in summary.rows}
    lines = [
        "",
        "## Greedy evaluation of the final checkpoints, mean over seeds (worst seed)",
        "",
        "Each finished run's final checkpoint, its most likely action at every step (the measure of "
        f"rl-zoo's published figures), over the episodes of its `{EVALUATION_FILE}` "
        "(`python -m benchmarks.evaluate_suite`); `published`: the suite's references.",
        "",
        "| env | " + " | ".join(agents) + " | published |",
        "|---" * (len(agents) + 2) + "|",
    ]
    for env in envs:
        refs = "; ".join(f"{ref.value:g} ({ref.agent})" for ref in summary.references if ref.env == env)
        cells = [_greedy_cell(by_key.get((env, a))) for a in agents]
        lines.append(f"| {env} | " + " | ".join(cells) + f" | {refs or '–'} |")
    return lines


def _progress_markdown(cells: Sequence[CellCount]) -> list[str]:
    """The suite's progress: cells done, running and pending, in all and per env and agent not done."""
    if not cells:
        return []
    total = {status: sum(getattr(c, status) for c in cells) for status in ("done", "running", "pending")}
    lines = [
        "## Suite progress",
        "",
        f"{sum(total.values())} cells: {total['done']} done, {total['running']} running, "
        f"{total['pending']} pending. The statistics below use the done cells only.",
        "",
    ]
    open_cells = [c for c in cells if c.running + c.pending]
    if open_cells:
        lines += ["| env | agent | done | running | pending |", "|---|---|---|---|---|"]
        lines += [f"| {c.env} | {c.agent} | {c.done} | {c.running} | {c.pending} |" for c in open_cells]
        lines.append("")
    return lines


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(mean: float, ci: tuple[float, float]) -> str:
    return f"{mean:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _markdown(
    summary: Summary,
    meta: Mapping[str, Any],
    command: str | None,
    checked: Sequence[TargetResult] = (),
    targets: Sequence[Target] = (),
) -> str:
    tag = summary.tag
    if not summary.thresholds:
        given = ""
    elif list(summary.thresholds) == ["*"]:
        given = f"Threshold {summary.thresholds['*']:g}"
    else:
        globs = ", ".join(f"`{glob}`: {value:g}" for glob, value in summary.thresholds.items())
        rest = "" if "*" in summary.thresholds else "; none for the others"
        given = f"Thresholds per env ({globs}{rest})"
    lines = [
        "# Run comparison",
        "",
        f"Made {meta['date']} on {meta['platform']} ({meta['cpus']} CPUs, Python {meta['python']}), "
        f"commit `{meta['commit'] or 'unknown'}`." + (f" Command: `{command}`" if command else ""),
        "",
        f"Final return: the mean of `{tag}` over the last {FINAL_FRACTION:.0%} of a run's logged points; "
        f"per agent the mean over seeds with a 95% stratified bootstrap CI (rliable, {summary.reps} "
        "reps), and the worst seed's final return."
        + (
            f" {given}: env steps and wall-clock seconds (since the run's first event, less "
            "the pauses of a run stopped and resumed) to the first point ≥ the threshold, "
            "averaged over the seeds that reached it."
            if given
            else ""
        )
        + " Steps/s: the last `time/fps` of each run (else its steps over its wall-clock time), averaged "
        "over seeds.",
        "",
    ]
    envs = sorted(
        {row.env for row in summary.rows}
        | {c.env for c in summary.cells}
        | {ref.env for ref in summary.references}
    )
    agents = sorted({row.agent for row in summary.rows} | {c.agent for c in summary.cells})
    by_key = {(row.env, row.agent): row for row in summary.rows}
    counts = {(c.env, c.agent): c for c in summary.cells}
    with_runs = {row.env for row in summary.rows}
    lines += targets_markdown(checked, targets)
    lines += _progress_markdown(summary.cells)
    lines += ["## Overview: final return, mean over seeds (worst seed)", ""]
    if summary.cells:
        lines += ["Finished cells only; `+k pending`: cells of the suite still running or to run.", ""]
    lines += ["| env | " + " | ".join(agents) + " |", "|---" * (len(agents) + 1) + "|"]
    for env in envs:
        cells = [_overview_cell(by_key.get((env, a)), counts.get((env, a))) for a in agents]
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    lines += _greedy_overview(summary, envs, agents)
    for env in envs:
        refs = [ref for ref in summary.references if ref.env == env]
        if env not in with_runs:
            waiting = [c for c in summary.cells if c.env == env]
            lines += ["", f"## {env}", ""]
            if waiting:
                waits = ", ".join(f"{c.agent} {_waiting(c)}" for c in waiting)
                lines.append(f"No finished runs yet: {waits}.")
            lines += references_markdown(refs)
            continue
        thr = summary.threshold_for(env)
        head = "| agent | seeds | final return [95% CI] | worst seed | env steps |"
        if thr is not None:
            head += f" reached ≥ {thr:g} | steps to ≥ {thr:g} | seconds to ≥ {thr:g} |"
        head += " steps/s |"
        greedy = any(row.greedy for row in summary.rows if row.env == env)
        if greedy:
            head += " greedy (worst) |"
        lines += [
            "",
            f"## {env}",
            "",
            f"![{env}]({plot_name(env)})",
            "",
            head,
            "|---" * head.count(" |") + "|",
        ]
        for agent in agents:
            if (row := by_key.get((env, agent))) is None:
                continue
            cells = [agent, str(row.num_seeds), _ci(row.final_mean, row.final_ci), _num(row.worst)]
            cells.append(f"{row.last_step:.0f}")
            if thr is not None:
                cells += [
                    f"{row.reached}/{row.num_seeds}",
                    _num(row.steps_to_threshold, 0),
                    _num(row.seconds_to_threshold, 1),
                ]
            cells.append(_num(row.steps_per_second, 0))
            if greedy:
                cells.append(_greedy_cell(row))
            lines.append("| " + " | ".join(cells) + " |")
        waiting = [c for c in summary.cells if c.env == env and c.running + c.pending]
        if waiting:
            lines += ["", "Still to come: " + ", ".join(f"{c.agent} {_waiting(c)}" for c in waiting) + "."]
        lines += references_markdown(refs)
    lines += ["", "## Aggregate across envs", ""]
    if summary.aggregate:
        lines += [
            "Interquartile mean (IQM) and mean of min-max normalised final returns over the runs × envs of "
            f"each agent, with 95% stratified bootstrap CIs; envs: {', '.join(summary.aggregate_envs)}.",
            "",
            "![aggregate](aggregate.png)",
            "",
            "| agent | envs | seeds per env | IQM [95% CI] | mean [95% CI] |",
            "|---|---|---|---|---|",
            *(
                f"| {a.agent} | {a.num_envs} | {a.seeds_per_env} | {_ci(a.iqm, a.iqm_ci)} | "
                f"{_ci(a.mean, a.mean_ci)} |"
                for a in summary.aggregate
            ),
            "",
            "Normalisation bounds (given: from a bounds file; observed: min and max of the final "
            "returns of all runs of that env):",
            "",
            "| env | low | high | source |",
            "|---|---|---|---|",
            *(
                f"| {env} | {low:.3f} | {high:.3f} | {summary.bounds_source[env]} |"
                for env, (low, high) in summary.bounds.items()
            ),
        ]
    else:
        lines.append("No env was run by every agent, so there is no aggregate.")
    if summary.notes:
        lines += ["", "## Notes", "", *(f"- {note}" for note in summary.notes)]
    return "\n".join(lines) + "\n"
