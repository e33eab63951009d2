"""How each target check is measured on one env (report/targets.py parses the targets and lists
the checks): the claim, its outcome, and the numbers behind it."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from report.records import AgentStats, Run

__all__ = ["BEST", "LAST_QUARTER", "Target", "TargetResult", "check_on_env", "last_quarter"]

BEST = "best"  # ``versus: best``: the env's best agent in the report
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
    margin: float = 0.1
    min_envs: int | None = None  # the target holds when this many env rows are met (None: all)


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


def last_quarter(run: Run) -> float:
    """Mean of a run's points in the last ``LAST_QUARTER`` of its steps."""
    start = run.steps[0] + (1 - LAST_QUARTER) * (run.steps[-1] - run.steps[0])
    return float(np.mean(run.values[run.steps >= start]))


def check_on_env(
    target: Target,
    env: str,
    groups: Mapping[tuple[str, str], list[Run]],
    rows: Mapping[tuple[str, str], AgentStats],
    default_threshold: float | None,
    bounds: tuple[float, float] | None = None,
) -> TargetResult:
    outcomes: list[tuple[str, bool, tuple[float, float], str]] = []  # agent, met, closeness, numbers
    missing: list[str] = []
    for agent in target.agents:
        opponent = target.versus.get(agent)
        if opponent == BEST:  # the env's best agent in the report
            opponent = max((r for (e, _), r in rows.items() if e == env), key=lambda r: r.final_mean).agent
        needed = [agent] + ([opponent] if opponent else [])
        if absent := [a for a in needed if (env, a) not in groups]:
            missing += absent
            continue
        outcomes.append(
            (agent, *_check(target, env, agent, opponent, groups, rows, default_threshold, bounds))
        )
    waiting = f"no runs of {', '.join(sorted(set(missing)))}" if missing else ""
    if met := [o for o in outcomes if o[1]]:
        return TargetResult(target.name, env, "met", met[0][0], met[0][3])
    if not outcomes:
        return TargetResult(target.name, env, "pending", None, waiting)
    agent, _, _, detail = max(outcomes, key=lambda o: o[2])
    # An agent still to run may yet meet it.
    return TargetResult(
        target.name,
        env,
        "pending" if missing else "not met",
        agent,
        "; ".join(filter(None, [detail, waiting])),
    )


def _check(
    target: Target,
    env: str,
    agent: str,
    opponent: str | None,
    groups: Mapping[tuple[str, str], list[Run]],
    rows: Mapping[tuple[str, str], AgentStats],
    default_threshold: float | None,
    bounds: tuple[float, float] | None = None,
) -> tuple[bool, tuple[float, float], str]:
    """(met, closeness (higher is closer to met), the numbers) for one agent."""
    row = rows[(env, agent)]
    other = rows.get((env, opponent)) if opponent else None
    seeds = f"{row.num_seeds} seed{'s' if row.num_seeds != 1 else ''}"
    if target.check in ("final_at_least", "final_above"):
        bar = other.final_mean if other else target.value
        assert bar is not None
        ok = row.final_mean >= bar if target.check == "final_at_least" else row.final_mean > bar
        against = f"{opponent} {other.final_mean:.3f}" if other else f"{bar:g}"
        return (
            ok,
            _closeness(1.0, row.final_mean - bar),
            f"{agent} {row.final_mean:.3f} ({seeds}) vs {against}",
        )
    if target.check == "greedy_at_least":
        bar = float(np.mean(other.greedy)) if other and other.greedy else target.value
        unevaluated = [
            f"{r.agent} {r.num_seeds - len(r.greedy)}/{r.num_seeds}"
            for r in (row, other)
            if r is not None and len(r.greedy) < r.num_seeds
        ]
        if unevaluated or bar is None:
            missing = ", ".join(unevaluated)
            detail = f"seeds without a greedy evaluation: {missing} (python -m benchmarks.evaluate_suite)"
            return False, _closeness(0.0, -len(unevaluated)), detail
        mine = float(np.mean(row.greedy))
        against = f"{opponent} {bar:.3f}" if other else f"{bar:g}"
        return mine >= bar, _closeness(1.0, mine - bar), f"{agent} greedy {mine:.3f} ({seeds}) vs {against}"
    if target.check == "final_at_most":
        bar = other.final_mean if other else target.value
        assert bar is not None
        against = f"{opponent} {other.final_mean:.3f}" if other else f"≤ {bar:g}"
        return (
            row.final_mean <= bar,
            _closeness(1.0, bar - row.final_mean),
            f"{agent} {row.final_mean:.3f} ({seeds}) vs {against}",
        )
    if target.check == "final_within":
        assert other is not None
        if bounds is None or not bounds[1] > bounds[0]:  # one level observed and no bounds given
            gap = other.final_mean - row.final_mean
            detail = f"{agent} vs {opponent}: no bounds to normalise {env} by"
            return gap <= 0, _closeness(1.0, -gap), detail
        low, high = bounds
        mine, theirs = ((r.final_mean - low) / (high - low) for r in (row, other))
        gap = theirs - mine
        return (
            gap <= target.margin,
            _closeness(1.0, target.margin - gap),
            f"{agent} {mine:.3f} vs {opponent} {theirs:.3f} normalised "
            f"(gap {gap:.3f}, margin {target.margin:g})",
        )
    if target.check == "final_clearly_above":
        bar = other.final_ci[1] if other else target.value
        assert bar is not None
        against = f"{opponent}'s CI high {bar:.3f}" if other else f"{bar:g}"
        detail = f"{agent} CI low {row.final_ci[0]:.3f} ({seeds}) vs {against}"
        if row.num_seeds < 2 or (other is not None and other.num_seeds < 2):
            # One seed's "interval" is a point: it shows nothing clearly.
            return False, _closeness(0.0, row.final_ci[0] - bar), detail + "; needs 2+ seeds each"
        return row.final_ci[0] > bar, _closeness(1.0, row.final_ci[0] - bar), detail
    if target.check == "keeps":
        normalised = bounds is not None and bounds[1] > bounds[0]
        low, high = bounds if normalised else (0.0, 1.0)
        drops = [(float(np.max(r.values)) - last_quarter(r)) / (high - low) for r in groups[(env, agent)]]
        worst = float(np.max(drops))  # NaN if any seed's is: never met
        scale = "normalised" if normalised else "raw"
        listed = ", ".join(f"{d:.3f}" for d in drops)
        detail = f"{agent} last quarter below its best by {listed} ({scale}) vs ≤ {target.margin:g}"
        return bool(worst <= target.margin), _closeness(1.0, target.margin - worst), detail
    if target.check == "stays":
        assert target.value is not None
        quarters = [last_quarter(r) for r in groups[(env, agent)]]
        worst = float(np.min(quarters))  # NaN if any seed's is: never met
        listed = ", ".join(f"{q:.3f}" for q in quarters)
        detail = f"{agent} last-quarter means {listed} vs ≥ {target.value:g}"
        return bool(worst >= target.value), _closeness(1.0, worst - target.value), detail
    # sooner: unreached seeds count as arriving at their run's end, a bound that favours the
    # opponent (a run that never arrives is at least that slow) and never A.
    threshold = target.threshold if target.threshold is not None else default_threshold
    if threshold is None:
        raise ValueError(
            f"target {target.name!r}: the report has no threshold for {env!r}; give the target one"
        )
    index = 0 if target.by == "steps" else 1
    unit = "steps" if target.by == "steps" else "s"
    mine = [r.first_reach(threshold) for r in groups[(env, agent)]]
    reached = sum(hit is not None for hit in mine)
    if reached < len(mine):
        share = reached / len(mine)
        return (
            False,
            _closeness(share - 1.0, row.final_mean),  # ties: the higher final
            f"{agent} reached {threshold:g} on {reached}/{len(mine)} seeds",
        )
    own = float(np.mean([hit[index] for hit in mine]))
    theirs = [_arrival(r, threshold)[index] for r in groups[(env, opponent)]]
    arrived = sum(r.first_reach(threshold) is not None for r in groups[(env, opponent)])
    bar = target.ratio * float(np.mean(theirs))
    times = f"{target.ratio:.3g} × " if target.ratio != 1 else ""
    at_least = "" if arrived == len(theirs) else "at least "
    detail = (
        f"{agent} {own:.0f} {unit} to {threshold:g} ({seeds}) vs {times}{opponent}'s {at_least}"
        f"{bar / target.ratio:.0f} ({arrived}/{len(theirs)} seeds reached it; the others count at their end)"
    )
    return own <= bar, _closeness(1.0, -own / max(bar, 1e-9)), detail


def _arrival(run: Run, threshold: float) -> tuple[float, float]:
    """(steps, seconds) of a run's first point ≥ threshold, else of its last point."""
    hit = run.first_reach(threshold)
    return hit if hit is not None else (float(run.steps[-1]), float(run.seconds[-1]))


def _closeness(tier: float, margin: float) -> tuple[float, float]:
    """Sort key of how close an agent came: a tier, then a margin (NaN sorts last)."""
    return tier, margin if np.isfinite(margin) else -np.inf
