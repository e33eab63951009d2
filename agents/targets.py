"""Targets: claims about a comparison, declared as data and checked against its runs.

A suite declares what its agents should achieve (``targets:`` in ``configs/suite/<suite>.yaml``),
and ``python -m agents.compare ... --targets FILE`` reports each claim as met, not met, or
pending (no runs yet). A target is a mapping::

    - name: "POPGym Easy: the best RTRL agent ends at least as high as RecurrentPPO"
      envs: ["popgym:*Easy"]            # env labels or globs; the claim must hold on each
      agents: [rtrl-elstm, rtrl-rtu]    # it holds on an env when any of these meets it
      check: final_at_least
      versus: rppo-lstm                 # an agent, {agent: its opponent}, or use `value`

Checks, for an agent A on one env, against ``versus`` B (or a number ``value``):

- ``final_at_least``: mean final return of A ≥ B's.
- ``final_above``: mean final return of A > B's.
- ``final_clearly_above``: the low end of A's 95% CI > the high end of B's (or > ``value``).
- ``sooner``: every seed of A first reaches ``threshold`` (default: the report's), and A's mean
  ``by`` (``steps`` or ``seconds``) to it is ≤ ``ratio`` (default 1) × B's mean over B's seeds
  that reached it. B counts as never there when none of its seeds reached it. This is
  conservative for A: B's seeds that never arrive do not slow B down.
- ``stays``: every seed of A has a last-quarter mean (points in the last 25% of its steps)
  ≥ ``value``: a learned task stays learned.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from agents.compare import AgentStats, Run, Summary, group_runs

__all__ = [
    "CHECKS",
    "Target",
    "TargetResult",
    "evaluate",
    "load_targets",
    "parse_targets",
    "targets_markdown",
]

CHECKS = ("final_at_least", "final_above", "final_clearly_above", "sooner", "stays")
LAST_QUARTER = 0.25


@dataclass(frozen=True)
class Target:
    """One declared claim (see the module docstring)."""

    name: str
    envs: tuple[str, ...]
    agents: tuple[str, ...]
    check: str
    versus: dict[str, str] = field(default_factory=dict)  # agent -> opponent; empty with `value`
    value: float | None = None
    threshold: float | None = None
    by: str = "steps"
    ratio: float = 1.0


@dataclass(frozen=True)
class TargetResult:
    """A target on one env: ``status`` is ``"met"``, ``"not met"`` or ``"pending"``.

    ``agent`` is the agent that meets it (else the closest one), and ``detail`` the numbers.
    """

    target: str
    env: str
    status: str
    agent: str | None
    detail: str


def parse_targets(raw: Any, where: str = "targets") -> list[Target]:
    """Targets from their YAML form (a list of mappings); raises ValueError naming the bad entry."""
    if not isinstance(raw, list):
        raise ValueError(f"{where}: a list of targets, got {type(raw).__name__}")
    targets = []
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{at}: a target is a mapping, got {entry!r}")
        known = {"name", "envs", "agents", "check", "versus", "value", "threshold", "by", "ratio"}
        if unknown := sorted(set(entry) - known):
            raise ValueError(f"{at}: unknown keys {unknown}; known: {sorted(known)}")
        for key in ("name", "envs", "agents", "check"):
            if key not in entry:
                raise ValueError(f"{at}: missing {key!r}")
        check = entry["check"]
        if check not in CHECKS:
            raise ValueError(f"{at}: unknown check {check!r}; valid: {', '.join(CHECKS)}")
        envs, agents = entry["envs"], entry["agents"]
        for key, names in (("envs", envs), ("agents", agents)):
            if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
                raise ValueError(f"{at}: {key} must be a non-empty list of names, got {names!r}")
        versus = entry.get("versus")
        if isinstance(versus, str):
            versus = dict.fromkeys(agents, versus)
        elif isinstance(versus, Mapping):
            versus = {str(k): str(v) for k, v in versus.items()}
            if missing := [a for a in agents if a not in versus]:
                raise ValueError(f"{at}: versus names no opponent for {missing}")
        elif versus is not None:
            raise ValueError(f"{at}: versus must be an agent or a mapping agent -> opponent, got {versus!r}")
        value = entry.get("value")
        if value is not None and not isinstance(value, int | float):
            raise ValueError(f"{at}: value must be a number, got {value!r}")
        needs = {"final_at_least": "versus or value", "final_above": "versus or value",
                 "final_clearly_above": "versus or value", "sooner": "versus", "stays": "value"}  # fmt: skip
        given = (versus is not None) + (value is not None)
        if given != 1 or (check == "sooner" and versus is None) or (check == "stays" and value is None):
            raise ValueError(f"{at}: check {check!r} takes {needs[check]} (exactly one)")
        by = entry.get("by", "steps")
        if by not in ("steps", "seconds"):
            raise ValueError(f"{at}: by must be 'steps' or 'seconds', got {by!r}")
        ratio, threshold = entry.get("ratio", 1.0), entry.get("threshold")
        if not (isinstance(ratio, int | float) and ratio > 0):
            raise ValueError(f"{at}: ratio must be a positive number, got {ratio!r}")
        if threshold is not None and not isinstance(threshold, int | float):
            raise ValueError(f"{at}: threshold must be a number, got {threshold!r}")
        targets.append(
            Target(
                name=str(entry["name"]),
                envs=tuple(envs),
                agents=tuple(agents),
                check=check,
                versus=versus or {},
                value=None if value is None else float(value),
                threshold=None if threshold is None else float(threshold),
                by=by,
                ratio=float(ratio),
            )
        )
    return targets


def load_targets(path: str | Path) -> list[Target]:
    """Targets from a YAML file: a list, or a mapping with a ``targets`` key (a suite config)."""
    raw = yaml.safe_load(Path(path).read_text())
    if isinstance(raw, Mapping):
        if "targets" not in raw:
            raise ValueError(f"{path}: no 'targets' key")
        raw = raw["targets"]
    return parse_targets(raw, str(path))


def last_quarter(run: Run) -> float:
    """Mean of a run's points in the last ``LAST_QUARTER`` of its steps."""
    start = run.steps[0] + (1 - LAST_QUARTER) * (run.steps[-1] - run.steps[0])
    return float(np.mean(run.values[run.steps >= start]))


def evaluate(targets: Sequence[Target], summary: Summary, runs: Sequence[Run]) -> list[TargetResult]:
    """Each target on each env its globs match (one pending row when they match none)."""
    groups = group_runs(runs)
    rows = {(row.env, row.agent): row for row in summary.rows}
    envs = sorted({env for env, _ in groups})
    results = []
    for target in targets:
        matched = [env for env in envs if any(fnmatch(env, pattern) for pattern in target.envs)]
        if not matched:
            results.append(
                TargetResult(target.name, ", ".join(target.envs), "pending", None, "no runs of these envs")
            )
        for env in matched:
            results.append(_on_env(target, env, groups, rows, summary.threshold))
    return results


def _on_env(
    target: Target,
    env: str,
    groups: Mapping[tuple[str, str], list[Run]],
    rows: Mapping[tuple[str, str], AgentStats],
    default_threshold: float | None,
) -> TargetResult:
    outcomes = []  # (met, score for "closest", agent, detail)
    missing = []
    for agent in target.agents:
        opponent = target.versus.get(agent)
        needed = [agent] + ([opponent] if opponent else [])
        if absent := [a for a in needed if (env, a) not in groups]:
            missing += absent
            continue
        outcomes.append((agent, *_check(target, env, agent, opponent, groups, rows, default_threshold)))
    if not outcomes:
        return TargetResult(
            target.name, env, "pending", None, f"no runs of {', '.join(sorted(set(missing)))}"
        )
    met = [o for o in outcomes if o[1]]
    # Not met: show the closest agent; ties (e.g. none reached the threshold) go to the higher final.
    closest = max(outcomes, key=lambda o: (o[2], rows[(env, o[0])].final_mean))
    agent, ok, _, detail = met[0] if met else closest
    return TargetResult(target.name, env, "met" if ok else "not met", agent, detail)


def _check(
    target: Target,
    env: str,
    agent: str,
    opponent: str | None,
    groups: Mapping[tuple[str, str], list[Run]],
    rows: Mapping[tuple[str, str], AgentStats],
    default_threshold: float | None,
) -> tuple[bool, float, str]:
    """(met, a score where higher is closer to met, the numbers) for one agent."""
    row = rows[(env, agent)]
    other = rows.get((env, opponent)) if opponent else None
    seeds = f"{row.num_seeds} seeds"
    if target.check in ("final_at_least", "final_above"):
        bar = other.final_mean if other else target.value
        ok = row.final_mean >= bar if target.check == "final_at_least" else row.final_mean > bar
        against = f"{opponent} {other.final_mean:.3f}" if other else f"{bar:g}"
        return ok, row.final_mean - bar, f"{agent} {row.final_mean:.3f} ({seeds}) vs {against}"
    if target.check == "final_clearly_above":
        bar = other.final_ci[1] if other else target.value
        against = f"{opponent}'s CI high {bar:.3f}" if other else f"{bar:g}"
        return (
            row.final_ci[0] > bar,
            row.final_ci[0] - bar,
            f"{agent} CI low {row.final_ci[0]:.3f} ({seeds}) vs {against}",
        )
    if target.check == "stays":
        quarters = [last_quarter(r) for r in groups[(env, agent)]]
        worst = min(quarters)
        listed = ", ".join(f"{q:.3f}" for q in quarters)
        return (
            worst >= target.value,
            worst - target.value,
            f"{agent} last-quarter means {listed} vs ≥ {target.value:g}",
        )
    # sooner
    threshold = target.threshold if target.threshold is not None else default_threshold
    if threshold is None:
        raise ValueError(f"target {target.name!r}: check 'sooner' needs a threshold (the report has none)")
    index = 0 if target.by == "steps" else 1
    mine = [r.first_reach(threshold) for r in groups[(env, agent)]]
    theirs = [hit for r in groups[(env, opponent)] if (hit := r.first_reach(threshold))]
    reached = sum(hit is not None for hit in mine)
    if reached < len(mine):
        return (
            False,
            -1.0 - (len(mine) - reached),
            f"{agent} reached {threshold:g} on {reached}/{len(mine)} seeds",
        )
    own = float(np.mean([hit[index] for hit in mine]))
    unit = "steps" if target.by == "steps" else "s"
    text = f"{agent} {own:.0f} {unit} to {threshold:g} ({seeds})"
    if not theirs:
        return True, 1.0, f"{text}; {opponent} never reached it"
    bar = target.ratio * float(np.mean([hit[index] for hit in theirs]))
    times = f"{target.ratio:.3g} × " if target.ratio != 1 else ""
    share = f"{len(theirs)}/{len(groups[(env, opponent)])}"
    detail = f"{text} vs {times}{opponent}'s {bar / target.ratio:.0f} ({share} seeds reached)"
    return own <= bar, (bar - own) / bar, detail


def targets_markdown(results: Sequence[TargetResult]) -> list[str]:
    """The report's "Targets" section: a summary line and one table row per target and env."""
    if not results:
        return []
    count = {s: sum(r.status == s for r in results) for s in ("met", "not met", "pending")}
    lines = [
        "## Targets",
        "",
        f"{count['met']} met, {count['not met']} not met, {count['pending']} pending (no runs yet), "
        "per target and env. A target holds when every env row of it is met.",
        "",
        "| target | env | status | agent | measured |",
        "|---|---|---|---|---|",
    ]
    mark = {"met": "**met**", "not met": "not met", "pending": "pending"}
    lines += [f"| {r.target} | {r.env} | {mark[r.status]} | {r.agent or '–'} | {r.detail} |" for r in results]
    return [*lines, ""]
