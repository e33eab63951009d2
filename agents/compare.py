"""Compare finished runs: ``python -m agents.compare DIR... --out OUT [--threshold X]``.

Reads run directories (TensorBoard event files, usually with the run's ``config.yaml``), groups
them by env and agent, and writes ``OUT/summary.md``, ``OUT/summary.json``, ``OUT/summary.csv``,
one PNG of learning curves per env and one PNG of the aggregate across envs.

- **Final return** of a run: the mean of the tag (``rollout/ep_rew_mean``) over the last 10% of its
  logged points (at least one point). Per env and agent: the mean over seeds with a 95% stratified
  bootstrap CI (rliable), and the worst seed beside it.
- **Time to threshold**: the env steps and the wall-clock seconds (event ``wall_time`` minus the
  run's first event) at the first logged point ≥ the threshold, averaged over the seeds that reached
  it; "k/n" says how many did. One threshold for every env (``--threshold 0.9``), or per env label
  glob (``--threshold 'popgym:*=0.9' --threshold 'gym:Hopper*=1000'``; the first match wins, a bare
  number covers the rest, and an env nothing covers gets no threshold columns): returns differ in
  scale between envs.
- **Steps/s**: the last ``time/fps`` of a run, else its last step over its wall-clock time.
- **Aggregate**: the interquartile mean (IQM, Agarwal et al. 2021) of min-max normalised final
  returns with a stratified bootstrap CI. Bounds per env: ``[low, high]`` from a bounds mapping
  (e.g. random-play and best returns), else the min and max of the final returns of all runs of
  that env (so the aggregate ranks agents relative to each other, not against a reference).
  Only envs that every agent ran enter the aggregate, with as many seeds per env as the agent's
  smallest count (rliable's bootstrap needs a full runs × envs matrix).
- **Targets** (``--targets FILE``, agents/targets.py): declared claims, such as "the best RTRL agent
  ends at least as high as RecurrentPPO on every POPGym Easy env", each reported as met, not met
  or pending in a "Targets" section at the top of summary.md.

Env labels come from ``config.yaml`` in the env adapters' own format (``popgym:RepeatPreviousEasy``,
``recall:delay12-cues4``, ``atari:pong``, ``procgen:maze-memory``, ``gym:CartPole-v1``), so finished
and crashed runs group together; an env family this module does not know uses the label the run
wrote (the hparams ``env``). ``policy.prev_action: false`` adds `` (no prev action)``. Agents are
``<algo>-<core>`` from the config. Without ``config.yaml`` the layout ``<env>/<agent>/seed<N>-*``
of the directory names is the fallback.
"""

from __future__ import annotations

import argparse
import csv
import datetime
import json
import math
import os
import platform
import re
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import yaml

if TYPE_CHECKING:
    from agents.targets import Target, TargetResult

__all__ = [
    "AgentStats",
    "AggregateStats",
    "Curve",
    "Run",
    "Summary",
    "agent_label",
    "env_label",
    "find_run_dirs",
    "group_runs",
    "load_bounds",
    "load_run",
    "load_runs",
    "machine_info",
    "main",
    "mean_curve",
    "parse_bounds",
    "parse_threshold_args",
    "plot_name",
    "summarize",
    "threshold_for",
    "thresholds_of",
    "write_report",
]

DEFAULT_TAG = "rollout/ep_rew_mean"
FINAL_FRACTION = 0.1  # the last 10% of a run's logged points make its final return
EVENTS_GLOB = "events.out.tfevents.*"
INSTALL_HINT = 'pip install -e ".[compare]"'


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
        seconds: (T,) wall-clock seconds of each point since the run's first event.
        fps: the last ``time/fps`` value, None when not logged.
        source: where the labels came from: ``"config"`` or ``"dirs"``.
        tag: the scalar tag read into ``values``.
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

    def threshold_for(self, env: str) -> float | None:
        """The threshold of an env label: the first glob of ``thresholds`` that matches it."""
        return threshold_for(self.thresholds, env)


Thresholds = float | Mapping[str, float] | None


def thresholds_of(threshold: Thresholds) -> dict[str, float]:
    """glob -> threshold from a number (every env), a mapping of globs, or None (no env)."""
    if threshold is None:
        return {}
    pairs = threshold.items() if isinstance(threshold, Mapping) else [("*", threshold)]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for _, v in pairs):
        raise ValueError(f"threshold must be a number or map env label globs to numbers, got {threshold!r}")
    return {str(glob): float(value) for glob, value in pairs}


def threshold_for(thresholds: Mapping[str, float], env: str) -> float | None:
    """The value of the first glob in ``thresholds`` that matches ``env``, else None."""
    return next((value for glob, value in thresholds.items() if fnmatchcase(env, glob)), None)


def parse_threshold_args(values: Sequence[str]) -> dict[str, float]:
    """``--threshold`` values (``X`` or ``GLOB=X``) -> glob -> threshold; a bare X goes last as ``*``."""
    globs: dict[str, float] = {}
    default = None
    for value in values:
        glob, sep, number = value.rpartition("=")
        try:
            parsed = float(number)
        except ValueError:
            raise ValueError(f"--threshold {value!r}: expected a number or GLOB=number") from None
        if not sep:
            if default is not None:
                raise ValueError(f"--threshold: two bare numbers ({default:g} and {value}); give one")
            default = parsed
        else:
            globs[glob] = parsed
    return {**globs, **({"*": default} if default is not None else {})}


@dataclass(frozen=True)
class Curve:
    """Mean learning curve of one agent on a common step grid, with a pointwise 95% CI band."""

    steps: np.ndarray  # (P,)
    mean: np.ndarray  # (P,)
    low: np.ndarray  # (P,)
    high: np.ndarray  # (P,)


# ---------------------------------------------------------------- labels


def env_label(env: Mapping[str, Any], policy: Mapping[str, Any] | None = None) -> str | None:
    """Readable env label from a run's ``env`` (and ``policy``) config; None for unknown families.

    Known families follow their adapters' names (envs/*.py), so a label made here matches the
    ``env`` hparam a finished run writes.
    """
    name = env.get("name")
    if name == "popgym":
        label = f"popgym:{env.get('id')}{env.get('difficulty', '')}"
    elif name == "recall":
        label = f"recall:delay{env.get('delay')}-cues{env.get('num_cues')}"
        if env.get("distractors"):
            label += "-distractors"
    elif name in ("atari", "procgen"):
        label = f"{name}:{env.get('game')}"
        if name == "procgen":
            label += f"-{env.get('distribution_mode')}"
    elif name == "gym":
        label = f"gym:{env.get('id')}"
    elif name == "memory_chain":
        label = f"memory_chain:length{env.get('memory_length')}-bits{env.get('num_bits')}"
    else:
        return None
    if policy is not None and policy.get("prev_action") is False:
        label += " (no prev action)"
    return label


def agent_label(config: Mapping[str, Any], agent_keys: Sequence[str] = ()) -> str:
    """``<algo>-<core>`` (just ``<algo>`` without a core), then ``[key=value,...]`` for agent_keys.
    A streaming agent whose rule is not exact RTRL is ``stream-<rule>-<core>``.

    ``agent_keys`` are dotted config keys (e.g. ``algo.rollout_len``) that split agents further.
    """
    algo = _get(config, "algo.name")
    core = _get(config, "core.name")
    if algo == "stream" and _get(config, "algo.rule") not in (None, "rtrl"):
        algo = f"stream-{_get(config, 'algo.rule')}"  # stream-tbptt-rtu: the same core, another rule
    label = f"{algo}-{core}" if core is not None else str(algo)
    extras = [f"{key.rsplit('.', 1)[-1]}={_get(config, key)}" for key in agent_keys]
    return label + (f"[{','.join(extras)}]" if extras else "")


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


# ---------------------------------------------------------------- loading


def find_run_dirs(dirs: Sequence[str | Path]) -> list[Path]:
    """Every directory under ``dirs`` (themselves included) that holds TensorBoard event files."""
    found: set[Path] = set()
    for root in map(Path, dirs):
        if not root.exists():
            raise FileNotFoundError(f"no such directory: {root}")
        found.update(p.parent for p in root.rglob(EVENTS_GLOB) if p.is_file())
    return sorted(found)


def load_run(path: str | Path, tag: str = DEFAULT_TAG, agent_keys: Sequence[str] = ()) -> Run | None:
    """Read one run directory; None when it never logged ``tag``."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    path = Path(path)
    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0})  # 0: keep every point
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return None
    points = sorted(acc.Scalars(tag), key=lambda p: p.step)  # stable: file order within a step
    fps = acc.Scalars("time/fps")[-1].value if "time/fps" in acc.Tags()["scalars"] else None
    start = acc.FirstEventTimestamp()
    config_file = path / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else None
    if isinstance(config, Mapping) and isinstance(config.get("env"), Mapping):
        env = env_label(config["env"], config.get("policy")) or _written_env(acc)
        agent, seed, source = agent_label(config, agent_keys), config.get("seed"), "config"
        if env is None:
            env = str(config["env"].get("name"))
    else:  # <env>/<agent>/seed<N>-<time>: train.py's layout
        env, agent, source = path.parent.parent.name, path.parent.name, "dirs"
        match = re.match(r"seed(\d+)", path.name)
        seed = int(match.group(1)) if match else None
    return Run(
        path=path,
        env=env,
        agent=agent,
        seed=None if seed is None else int(seed),
        steps=np.array([p.step for p in points], dtype=np.int64),
        values=np.array([p.value for p in points], dtype=np.float64),
        seconds=np.array([p.wall_time - start for p in points], dtype=np.float64),
        fps=None if fps is None else float(fps),
        source=source,
        tag=tag,
    )


def _written_env(acc: Any) -> str | None:
    """The ``env`` hparam a finished run wrote (train.py's add_hparams), if any."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    try:
        content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    except KeyError:
        return None
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return hparams["env"].string_value if "env" in hparams else None


def load_runs(
    dirs: Sequence[str | Path], tag: str = DEFAULT_TAG, agent_keys: Sequence[str] = ()
) -> list[Run]:
    """Every run under ``dirs`` that logged ``tag``.

    Raises:
        FileNotFoundError: a directory does not exist, or holds no run.
        ValueError: runs exist, but none logged ``tag``.
    """
    paths = find_run_dirs(dirs)
    if not paths:
        raise FileNotFoundError(
            f"no runs found under {', '.join(map(str, dirs))}: a run directory holds TensorBoard "
            f"event files ({EVENTS_GLOB}), as train.py writes them under <log_dir>/<env>/<algo>-<core>/"
        )
    runs = [run for path in paths if (run := load_run(path, tag, agent_keys)) is not None]
    if not runs:
        raise ValueError(f"none of the {len(paths)} runs under {', '.join(map(str, dirs))} logged {tag!r}")
    return runs


# ---------------------------------------------------------------- statistics


def _rliable() -> tuple[Any, Any]:
    try:
        from rliable import library, metrics
    except Exception as exc:  # arch, under rliable, fails on pandas 3 with more than ImportError
        raise ImportError(f"agents.compare needs rliable and pandas<3 ({exc}): {INSTALL_HINT}") from exc
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


def group_runs(runs: Sequence[Run]) -> dict[tuple[str, str], list[Run]]:
    """(env, agent) -> its runs, both sorted (runs by seed, then path)."""
    groups: dict[tuple[str, str], list[Run]] = {}
    for run in sorted(runs, key=lambda r: (r.env, r.agent, r.seed is None, r.seed or 0, str(r.path))):
        groups.setdefault((run.env, run.agent), []).append(run)
    return groups


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


def load_bounds(path: str | Path) -> dict[str, tuple[float, float]]:
    """A YAML mapping of env label -> [low, high], e.g. random-play and best returns, or a suite
    config that holds one under ``bounds``."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if isinstance(data, Mapping) and "tasks" in data:  # a suite config
        if "bounds" not in data:
            raise ValueError(f"{path}: no 'bounds' key")
        data = data["bounds"]
    return parse_bounds(data, str(path))


def parse_bounds(data: Any, where: str = "bounds") -> dict[str, tuple[float, float]]:
    """env label -> (low, high) from its YAML form; raises ValueError naming the bad entry."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: bounds must map env labels to [low, high], got {type(data).__name__}")
    bounds = {}
    for env, pair in data.items():
        numbers = isinstance(pair, Sequence) and len(pair) == 2
        if not (numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)):
            raise ValueError(f"{where}: bounds for {env!r} must be [low, high] numbers, got {pair!r}")
        if not pair[1] > pair[0]:
            raise ValueError(f"{where}: bounds for {env!r} must be [low, high] with high > low, got {pair!r}")
        bounds[str(env)] = (float(pair[0]), float(pair[1]))
    return bounds


# ---------------------------------------------------------------- report


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
    the markdown header; ``targets`` (agents.targets) are checked into a "Targets" section.
    """
    from agents.compare_plots import agent_colors, plot_aggregate, plot_curves
    from agents.targets import evaluate

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
        "targets": [asdict(result) for result in checked],
        "runs": [
            {"path": str(r.path), "env": r.env, "agent": r.agent, "seed": r.seed, "final": r.final,
             "last_step": int(r.steps[-1]), "points": len(r.steps), "labels_from": r.source}
            for rs in groups.values()
            for r in rs
        ],
    }  # fmt: skip
    (out / "summary.json").write_text(json.dumps(payload, indent=2) + "\n")
    with (out / "summary.csv").open("w", newline="") as f:
        writer = csv.writer(f)
        columns = [k for k in AgentStats.__dataclass_fields__ if k not in ("final_ci", "seeds", "finals")]
        writer.writerow([*columns, "final_ci_low", "final_ci_high", "seeds", "finals"])
        for row in summary.rows:
            values = asdict(row)
            writer.writerow(
                [*(values[k] for k in columns), *row.final_ci, " ".join(map(str, row.seeds)),
                 " ".join(f"{x:.6g}" for x in row.finals)]
            )  # fmt: skip
    (out / "summary.md").write_text(_markdown(summary, meta, command, checked))
    return [out / "summary.md", out / "summary.json", out / "summary.csv", *written]


def _num(x: float | None, digits: int = 3) -> str:
    return "–" if x is None else f"{x:.{digits}f}"


def _ci(mean: float, ci: tuple[float, float]) -> str:
    return f"{mean:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"


def _markdown(
    summary: Summary, meta: Mapping[str, Any], command: str | None, checked: Sequence[TargetResult] = ()
) -> str:
    from agents.targets import targets_markdown

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
            f" {given}: env steps and wall-clock seconds (since the run's first event) to the "
            "first point ≥ the threshold, averaged over the seeds that reached it."
            if given
            else ""
        )
        + " Steps/s: the last `time/fps` of each run (else its steps over its wall-clock time), averaged "
        "over seeds.",
        "",
    ]
    envs = sorted({row.env for row in summary.rows})
    agents = sorted({row.agent for row in summary.rows})
    by_key = {(row.env, row.agent): row for row in summary.rows}
    lines += targets_markdown(checked)
    lines += ["## Overview: final return, mean over seeds (worst seed)", ""]
    lines += ["| env | " + " | ".join(agents) + " |", "|---" * (len(agents) + 1) + "|"]
    for env in envs:
        cells = [
            f"{r.final_mean:.3f} ({r.worst:.3f})" if (r := by_key.get((env, a))) else "–" for a in agents
        ]
        lines.append(f"| {env} | " + " | ".join(cells) + " |")
    for env in envs:
        thr = summary.threshold_for(env)
        head = "| agent | seeds | final return [95% CI] | worst seed | env steps |"
        if thr is not None:
            head += f" reached ≥ {thr:g} | steps to ≥ {thr:g} | seconds to ≥ {thr:g} |"
        head += " steps/s |"
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
            lines.append("| " + " | ".join(cells) + " |")
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


# ---------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m agents.compare DIR... --out OUT``; returns the exit status."""
    from agents.targets import load_targets

    parser = argparse.ArgumentParser(
        prog="python -m agents.compare",
        description="Compare finished runs: summary.md/json/csv and PNGs of curves and the aggregate.",
    )
    parser.add_argument("dirs", nargs="+", help="run directories, or directories above them")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="[GLOB=]X",
        help="return for steps/seconds-to-threshold: X for every env, or GLOB=X per env label (repeatable)",
    )
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"scalar tag to compare (default {DEFAULT_TAG})")
    parser.add_argument(
        "--bounds", help="YAML of env label -> [low, high] for the normalisation (or a suite config's bounds)"
    )
    parser.add_argument(
        "--agent-key",
        action="append",
        default=[],
        dest="agent_keys",
        help="dotted config key that splits agents further, e.g. algo.rollout_len (repeatable)",
    )
    parser.add_argument("--targets", help="YAML of targets to check (a list, or a suite config's targets)")
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replications (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    args = parser.parse_args(argv)
    try:
        runs = load_runs(args.dirs, args.tag, args.agent_keys)
        bounds = load_bounds(args.bounds) if args.bounds else None
        targets = load_targets(args.targets) if args.targets else []
        summary = summarize(runs, parse_threshold_args(args.threshold), bounds, args.reps, args.seed)
        command = "python -m agents.compare " + " ".join(sys.argv[1:] if argv is None else argv)
        paths = write_report(summary, runs, args.out, command, seed=args.seed, targets=targets)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(runs)} runs, {len(summary.rows)} env × agent groups; wrote {', '.join(map(str, paths))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
