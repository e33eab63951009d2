"""Statistics over runs: per env and agent the final return with a bootstrap CI, the steps and
seconds to a threshold, steps/s; across envs the IQM of normalised final returns; mean curves.
Intervals are rliable's stratified bootstrap (the compare extra)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import numpy as np

from report.records import AgentStats, AggregateStats, Curve, Run, Summary, group_runs, threshold_for
from report.thresholds import Thresholds, parse_bounds, thresholds_of

__all__ = ["mean_curve", "summarize"]

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
    """
    if not runs:
        raise ValueError("no runs to summarize")
    tags = {run.tag for run in runs}
    if len(tags) > 1:
        raise ValueError(f"runs of different tags cannot be compared: {sorted(tags)}")
    groups = group_runs(runs)
    thresholds = thresholds_of(threshold)
    notes: list[str] = []
    point, ci = _intervals(
        {f"{env}\0{agent}": np.array([[r.final] for r in rs]) for (env, agent), rs in groups.items()},
        lambda x: np.array([np.mean(x)]),
        reps,
        seed,
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
    common = [env for env in envs if all((env, agent) in groups for agent in agents)]
    if len(common) < len(envs):
        notes.append(
            f"The aggregate uses the {len(common)} env(s) that every agent ran; left out: "
            f"{', '.join(e for e in envs if e not in common)}."
        )
    aggregate = _aggregate(groups, common, agents, all_bounds, reps, seed) if common else []
    return Summary(
        tag=tags.pop(),
        thresholds=thresholds,
        rows=rows,
        aggregate=aggregate,
        aggregate_envs=common,
        bounds=all_bounds,
        bounds_source=source,
        reps=reps,
        notes=notes,
    )


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
