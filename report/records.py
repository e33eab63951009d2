"""The report's record types: a run's curve, the statistics of an agent on an env and across envs,
and the summary that holds them. A leaf: it imports nothing of the report's, so that every other
part can import it."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

import numpy as np

__all__ = [
    "DEFAULT_TAG",
    "EVALUATION_FILE",
    "FINAL_FRACTION",
    "AgentStats",
    "AggregateStats",
    "CellCount",
    "Curve",
    "Reference",
    "Run",
    "Summary",
    "group_runs",
    "threshold_for",
    "training_seconds",
]

DEFAULT_TAG = "rollout/ep_rew_mean"
FINAL_FRACTION = 0.1  # the last 10% of a run's logged points make its final return
# A run dir's evaluations of its final checkpoint (benchmarks/evaluate_suite.py writes it): a
# mapping of "<greedy|sampled>-<N>ep-seed<S>" to {"greedy", "episodes", "return_mean", ...}.
EVALUATION_FILE = "evaluation.json"
# A gap between two logged points longer than both of these is a stop (and resume), not training.
PAUSE_SECONDS = 60.0
PAUSE_FACTOR = 20.0  # x the run's median gap: slow runs (a CNN on a CPU) log seconds apart


def training_seconds(wall: np.ndarray) -> np.ndarray:
    """Seconds of training at each logged point, from its event times (seconds since the first).

    A run resumed from its checkpoint (``resume=``, or a suite picking up a cell on another day)
    logs into the same directory, so its event times jump by however long it lay stopped: hours,
    where a suite spans machines. Each gap longer than ``PAUSE_SECONDS`` and ``PAUSE_FACTOR`` x
    the median gap counts as a pause and is replaced by the median gap, so that seconds to a
    return count the time spent training, as on a run that never stopped.
    """
    wall = np.asarray(wall, dtype=np.float64)
    if len(wall) < 2:
        return wall.copy()
    gaps = np.diff(wall)
    median = float(np.median(gaps))
    paused = gaps > max(PAUSE_SECONDS, PAUSE_FACTOR * median)
    gaps = np.where(paused, median, gaps)
    return np.concatenate([wall[:1], wall[0] + np.cumsum(gaps)])


@dataclass(frozen=True)
class Run:
    """One run's curve of the compared tag, with its labels.

    Attributes:
        path: the run directory.
        env: env label, e.g. ``"popgym:RepeatPreviousEasy"``.
        agent: agent label, ``"<algo>-<core>"``.
        seed: the run's seed (None when unknown).
        steps: (T,) env steps of the logged points, ascending.
        values: (T,) the tag's values.
        seconds: (T,) wall-clock seconds of each point since the run's first event, less the
            pauses of a run stopped and resumed (:func:`training_seconds`).
        fps: the last ``time/fps`` value, None when not logged.
        source: where the labels came from: ``"config"`` or ``"dirs"``.
        tag: the scalar tag read into ``values``.
        greedy: the mean return of the final checkpoint's greedy policy (``EVALUATION_FILE``; the
            evaluation with the most episodes), None when it was not evaluated.
    """

    path: Path
    env: str
    agent: str
    seed: int | None
    steps: np.ndarray
    values: np.ndarray
    seconds: np.ndarray
    fps: float | None
    source: str
    tag: str = DEFAULT_TAG
    greedy: float | None = None

    @property
    def final(self) -> float:
        """Mean of the last ``FINAL_FRACTION`` of the logged points (at least one)."""
        count = max(1, math.ceil(FINAL_FRACTION * len(self.values)))
        return float(np.mean(self.values[-count:]))

    def first_reach(self, threshold: float) -> tuple[int, float] | None:
        """(steps, seconds) at the first point with value ≥ threshold, None if never."""
        hits = np.flatnonzero(self.values >= threshold)
        if len(hits) == 0:
            return None
        return int(self.steps[hits[0]]), float(self.seconds[hits[0]])

    @property
    def steps_per_second(self) -> float | None:
        """The last logged ``time/fps``, else the last step over the wall-clock time."""
        if self.fps is not None:
            return self.fps
        return float(self.steps[-1] / self.seconds[-1]) if self.seconds[-1] > 0 else None


@dataclass(frozen=True)
class AgentStats:
    """One agent on one env, over its seeds (CIs: 95% stratified bootstrap over seeds)."""

    env: str
    agent: str
    num_seeds: int
    seeds: list[int | None]
    finals: list[float]
    final_mean: float
    final_ci: tuple[float, float]
    worst: float
    last_step: float  # mean over seeds of the last logged step
    threshold: float | None
    reached: int  # seeds that reached the threshold
    steps_to_threshold: float | None  # mean over the seeds that reached it
    seconds_to_threshold: float | None
    steps_per_second: float | None  # mean over seeds
    greedy: tuple[float, ...] = ()  # the greedy evaluations of the seeds that have one (Run.greedy)


@dataclass(frozen=True)
class AggregateStats:
    """One agent across envs: IQM and mean of min-max normalised final returns, with CIs."""

    agent: str
    iqm: float
    iqm_ci: tuple[float, float]
    mean: float
    mean_ci: tuple[float, float]
    num_envs: int
    seeds_per_env: int


@dataclass(frozen=True)
class Reference:
    """A published result, printed beside an env's measured rows and never mixed into them (not in
    the aggregate, the bounds or the targets).

    Attributes:
        env: env label, as the report writes it (e.g. ``"gym:CartPoleNoVel-v1"``).
        value: the published return.
        budget: env steps of training behind it (None when the source does not say).
        agent: what produced it, e.g. ``"RecurrentPPO, rl-zoo ppo_lstm"``.
        source: where it is published (a citation or URL), and how it was measured.
    """

    env: str
    value: float
    budget: int | None
    agent: str
    source: str


@dataclass(frozen=True)
class CellCount:
    """A suite's cells of one env and agent, by status: ``done`` cells have finished runs in the
    report; ``running`` (events written lately) and ``pending`` ones have none in it yet."""

    env: str
    agent: str
    done: int
    running: int
    pending: int


@dataclass
class Summary:
    """What :func:`summarize` finds; :func:`write_report` turns it into files."""

    tag: str
    thresholds: dict[str, float]  # env label glob -> threshold, first match wins
    rows: list[AgentStats]
    aggregate: list[AggregateStats]
    aggregate_envs: list[str]
    bounds: dict[str, tuple[float, float]]
    bounds_source: dict[str, str]  # env -> "given" | "observed"
    reps: int
    notes: list[str] = field(default_factory=list)
    references: list[Reference] = field(default_factory=list)
    cells: list[CellCount] = field(default_factory=list)  # from a suite; empty for plain run dirs

    def threshold_for(self, env: str) -> float | None:
        """The threshold of an env label: the first glob of ``thresholds`` that matches it."""
        return threshold_for(self.thresholds, env)


def threshold_for(thresholds: Mapping[str, float], env: str) -> float | None:
    """The value of the first glob in ``thresholds`` that matches ``env``, else None."""
    return next((value for glob, value in thresholds.items() if fnmatchcase(env, glob)), None)


@dataclass(frozen=True)
class Curve:
    """Mean learning curve of one agent on a common step grid, with a pointwise 95% CI band."""

    steps: np.ndarray  # (P,)
    mean: np.ndarray  # (P,)
    low: np.ndarray  # (P,)
    high: np.ndarray  # (P,)


def group_runs(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
    """(env, agent) -> its runs, both sorted (runs by seed, then path)."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.env, r.agent, r.seed is None, r.seed or 0, str(r.path))):
        groups.setdefault((run.env, run.agent), []).append(run)
    return groups
