"""Statistics over runs: per env and agent the final return with a bootstrap CI, the steps and
seconds to a threshold, steps/s; across envs the IQM of normalised final returns; mean curves.
Intervals are rliable's stratified bootstrap (the compare extra)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from fnmatch import fnmatchcase
from typing import Any

import numpy as np

from report.records import (
    DEFAULT_TAG,
    AgentStats,
    AggregateStats,
    CellCount,
    Curve,
    Reference,
    Run,
    Summary,
    group_runs,
    threshold_for,
)
from report.thresholds import Thresholds, parse_bounds, thresholds_of

__all__ = ["aggregate_set", "mean_curve", "summarize"]

INSTALL_HINT = 'pip install -e ".[compare]"'


def _rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except Exception as exc:  # arch, under rliable, fails on pandas 3 with more than ImportError
        raise ImportError(f"the report needs rliable and pandas<3 ({exc}): {INSTALL_HINT}") from exc
    return library, metrics


@contextmanager
def _seeded(seed: int) -> Iterator[None]:
    """rliable's stratified bootstrap draws from numpy's global RNG; seed it, then restore it."""
    state = np.random.get_state()
    np.random.seed(seed)
    try:
        yield
    finally:
        np.random.set_state(state)


def _intervals(
    scores: Mapping[str, np.ndarray], func: Callable[[np.ndarray], np.ndarray], reps: int, seed: int
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """rliable point estimates and 95% stratified-bootstrap intervals (2, K) per key."""
    library, _ = _rliable()
    with _seeded(seed):
        return library.get_interval_estimates(dict(scores), func, reps=reps)


def mean_curve(runs: Sequence[Run], num_points: int = 100, reps: int = 2000, seed: int = 0) -> Curve:
    """Mean over ``runs`` of their curves, linearly interpolated onto a common grid of steps.

    The grid spans the steps every run covers (no extrapolation); the band is a pointwise 95%
    stratified bootstrap CI over runs.
    """
    lo = max(int(run.steps[0]) for run in runs)
    hi = min(int(run.steps[-1]) for run in runs)
    grid = np.linspace(lo, hi, num_points) if hi > lo else np.array([float(hi)])
    curves = np.stack([np.interp(grid, run.steps, run.values) for run in runs])  # (R, P)
    _, ci = _intervals({"curve": curves}, lambda x: np.mean(x, axis=0), reps, seed)
    return Curve(grid, curves.mean(axis=0), ci["curve"][0], ci["curve"][1])


def summarize(
    runs: Sequence[Run],
    threshold: Thresholds = None,
    bounds: Mapping[str, Sequence[float]] | None = None,
    reps: int = 2000,
    seed: int = 0,
    aggregate_envs: Sequence[str] | None = None,
    references: Sequence[Reference] = (),
    cells: Sequence[CellCount] = (),
) -> Summary:
    """Per env and agent statistics, and the aggregate across envs (see the module docstring).

    Args:
        runs: from :func:`load_runs`.
        threshold: return for steps/seconds-to-threshold: one number for every env, or env label
            glob -> number (the first match wins); None, or an env no glob matches, skips those
            columns.
        bounds: env label -> [low, high] for the min-max normalisation; other envs use the
            observed min and max of their runs' final returns.
        reps: bootstrap replications.
        seed: seeds the bootstrap, so a report regenerates identically.
        aggregate_envs: env label globs the aggregate covers (agents that miss one are left out of
            it); None: the envs and agents of :func:`aggregate_set`.
        references: published results, carried to the report beside the rows, never into them.
        cells: a suite's cells per env and agent by status; with them, ``runs`` may be empty (a
            suite that has finished nothing yet).
    """
    if not runs and not cells:
        raise ValueError("no runs to summarize")
    tags = {run.tag for run in runs}
    if len(tags) > 1:
        raise ValueError(f"runs of different tags cannot be compared: {sorted(tags)}")
    groups = group_runs(runs)
    thresholds = thresholds_of(threshold)
    notes: list[str] = []
    point, ci = (
        _intervals(
            {f"{env}\0{agent}": np.array([[r.final] for r in rs]) for (env, agent), rs in groups.items()},
            lambda x: np.array([np.mean(x)]),
            reps,
            seed,
        )
        if groups
        else ({}, {})
    )
    rows = []
    for (env, agent), rs in groups.items():
        key = f"{env}\0{agent}"
        env_threshold = threshold_for(thresholds, env)
        reach = [hit for r in rs if env_threshold is not None and (hit := r.first_reach(env_threshold))]
        speeds = [s for r in rs if (s := r.steps_per_second) is not None]
        rows.append(
            AgentStats(
                env=env,
                agent=agent,
                num_seeds=len(rs),
                seeds=[r.seed for r in rs],
                finals=[r.final for r in rs],
                final_mean=float(point[key][0]),
                final_ci=(float(ci[key][0, 0]), float(ci[key][1, 0])),
                worst=min(r.final for r in rs),
                last_step=float(np.mean([r.steps[-1] for r in rs])),
                threshold=env_threshold,
                reached=len(reach),
                steps_to_threshold=float(np.mean([h[0] for h in reach])) if reach else None,
                seconds_to_threshold=float(np.mean([h[1] for h in reach])) if reach else None,
                steps_per_second=float(np.mean(speeds)) if speeds else None,
                greedy=tuple(r.greedy for r in rs if r.greedy is not None),
            )
        )
        seeds = [r.seed for r in rs]
        if len(set(seeds)) < len(seeds):
            notes.append(f"{env} {agent}: {len(seeds)} runs but seeds {seeds} repeat; each run counts once.")
    envs = sorted({env for env, _ in groups})
    agents = sorted({agent for _, agent in groups})
    given = parse_bounds(bounds or {})
    all_bounds, source = {}, {}
    for env in envs:
        finals = [r.final for (e, _), rs in groups.items() if e == env for r in rs]
        all_bounds[env] = given.get(env, (min(finals), max(finals)))
        source[env] = "given" if env in given else "observed"
    if unused := sorted(set(given) - set(envs)):
        notes.append(f"Bounds were given for envs without runs: {', '.join(unused)}.")
    common, members = aggregate_set({key: len(rs) for key, rs in groups.items()}, aggregate_envs)
    if len(common) < len(envs) or len(members) < len(agents):
        left_envs = [e for e in envs if e not in common]
        left_agents = [a for a in agents if a not in members]
        notes.append(
            f"The aggregate covers {len(common)} env(s) and the {len(members)} agent(s) that ran every one "
            f"of them" + (f"; envs left out: {', '.join(left_envs)}" if left_envs else "")
            + (f"; agents left out: {', '.join(left_agents)}" if left_agents else "") + "."
        )  # fmt: skip
    aggregate = _aggregate(groups, common, members, all_bounds, reps, seed) if common and members else []
    return Summary(
        tag=tags.pop() if tags else DEFAULT_TAG,
        thresholds=thresholds,
        rows=rows,
        aggregate=aggregate,
        aggregate_envs=common,
        bounds=all_bounds,
        bounds_source=source,
        reps=reps,
        notes=notes,
        references=list(references),
        cells=list(cells),
    )


def aggregate_set(
    finished: Mapping[tuple[str, str], int], globs: Sequence[str] | None = None
) -> tuple[list[str], list[str]]:
    """The envs and agents the aggregate covers (rliable needs a full runs × envs matrix), from the
    (env, agent) pairs with finished runs.

    With ``globs``: the envs they match, and the agents that ran all of them. Without: of the env
    sets that some agent ran, the one that the most (agent, env) pairs fill, every agent that ran
    all of it (ties: more agents). When every agent ran every env, that is all of them; an agent
    that ran a few envs only (a preset for some tasks) is left out rather than shrinking the set.
    """
    envs = sorted({env for env, _ in finished})
    agents = sorted({agent for _, agent in finished})
    ran = {agent: {env for env, a in finished if a == agent} for agent in agents}
    if globs is not None:
        chosen = {env for env in envs if any(fnmatchcase(env, g) for g in globs)}
    else:
        best: tuple[int, int] = (0, 0)
        chosen = set()
        for candidate in ran.values():
            covering = sum(candidate <= ran[a] for a in agents)
            if (score := (covering * len(candidate), covering)) > best:
                best, chosen = score, candidate
    members = [a for a in agents if chosen and chosen <= ran[a]]
    return sorted(chosen), members


def _aggregate(
    groups: Mapping[tuple[str, str], list[Run]],
    envs: Sequence[str],
    agents: Sequence[str],
    bounds: Mapping[str, tuple[float, float]],
    reps: int,
    seed: int,
) -> list[AggregateStats]:
    _, metrics = _rliable()
    scores = {}
    for agent in agents:
        count = min(len(groups[(env, agent)]) for env in envs)
        columns = []
        for env in envs:
            low, high = bounds[env]
            finals = np.array([r.final for r in groups[(env, agent)][:count]])
            columns.append((finals - low) / (high - low if high > low else 1.0))
        scores[agent] = np.stack(columns, axis=1)  # (runs, envs)
    point, ci = _intervals(
        scores, lambda x: np.array([metrics.aggregate_iqm(x), metrics.aggregate_mean(x)]), reps, seed
    )
    return [
        AggregateStats(
            agent=agent,
            iqm=float(point[agent][0]),
            iqm_ci=(float(ci[agent][0, 0]), float(ci[agent][1, 0])),
            mean=float(point[agent][1]),
            mean_ci=(float(ci[agent][0, 1]), float(ci[agent][1, 1])),
            num_envs=len(envs),
            seeds_per_env=scores[agent].shape[0],
        )
        for agent in agents
    ]
