"""A suite's config: ``configs/suite/<name>.yaml`` read and checked into a :class:`Suite` of
tasks, agents and seeds, which benchmarks/suite.py runs (its docstring gives the rules)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from benchmarks.suites.evaluation import EvaluationSpec, parse_evaluation
from report.records import Reference
from report.references import parse_references
from report.targets import Target, parse_targets
from report.thresholds import parse_bounds, thresholds_of

__all__ = ["CONFIGS", "ROOT", "SUITE_CONFIGS", "Suite", "Task", "load_suite", "suite_names"]

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ROOT / "configs"
SUITE_CONFIGS = CONFIGS / "suite"
# Top-level config keys each kind of entry may set (the part before the first dot or slash).
_TASK_KEYS = ("env", "policy")
_AGENT_KEYS = ("algo", "core", "num_envs", "tuned")  # tuned: a preset of learner keys (configs/tuned)
_COMMON_FORBIDDEN = (*_TASK_KEYS, "algo", "core", "seed", "total_steps", "resume", "log_dir")


@dataclasses.dataclass(frozen=True)
class Task:
    """One task: its env (and policy-input) overrides, its budget, optionally a subset of agents."""

    overrides: tuple[str, ...]
    total_steps: int
    agents: tuple[str, ...] | None = None


@dataclasses.dataclass(frozen=True)
class Suite:
    """A suite config (configs/suite/<name>.yaml) after validation."""

    name: str
    seeds: tuple[int, ...]
    agents: dict[str, tuple[str, ...]]
    tasks: dict[str, Task]
    common: tuple[str, ...] = ()
    agent_seeds: dict[str, tuple[int, ...]] = dataclasses.field(default_factory=dict)  # agent: its seeds
    agent_tasks: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # agent: its tasks
    threshold: dict[str, float] = dataclasses.field(default_factory=dict)  # env label glob -> X
    n_jobs: int = 2
    targets: tuple[Target, ...] = ()  # checked by the report, in env and agent labels
    bounds: dict[str, tuple[float, float]] = dataclasses.field(default_factory=dict)  # env: [low, high]
    references: tuple[Reference, ...] = ()  # published results the report prints beside the rows
    aggregate_envs: tuple[str, ...] | None = None  # env label globs the report's aggregate covers
    agent_keys: tuple[str, ...] = ()  # dotted config keys that split the report's agent labels
    evaluate: EvaluationSpec | None = None  # each cell's final checkpoint evaluated as it finishes
    path: Path | None = None  # the config file (the report reads its targets and bounds from it)

    def seeds_of(self, agent: str) -> tuple[int, ...]:
        """The seeds an agent runs: its own ``seeds`` where the entry gives them, else the suite's."""
        return self.agent_seeds.get(agent, self.seeds)

    def runs(self, task: str, agent: str) -> bool:
        """Whether the agent runs on the task: both the task's ``agents`` and the agent's ``tasks``
        (where given) allow it."""
        allowed = self.tasks[task].agents
        return (allowed is None or agent in allowed) and task in self.agent_tasks.get(agent, (task,))


def suite_names() -> list[str]:
    """The suites in configs/suite/."""
    return sorted(p.stem for p in SUITE_CONFIGS.glob("*.yaml"))


def load_suite(name_or_path: str | Path) -> Suite:
    """Read and check a suite: a name in configs/suite/ or the path of a YAML file."""
    path = Path(name_or_path)
    if path.suffix not in (".yaml", ".yml"):
        path = SUITE_CONFIGS / f"{name_or_path}.yaml"
        if not path.is_file():
            raise ValueError(f"unknown suite {str(name_or_path)!r}; valid suites: {', '.join(suite_names())}")
    elif not path.is_file():
        raise FileNotFoundError(f"no suite config at {path}")
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: a suite is a mapping with seeds, agents and tasks")
    known = {
        "seeds", "agents", "tasks", "common", "threshold", "n_jobs", "targets", "bounds", "references",
        "aggregate_envs", "agent_keys", "evaluate",
    }  # fmt: skip
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown key(s) {unknown}; valid keys: {sorted(known)}")
    for key in ("seeds", "agents", "tasks"):
        if not raw.get(key):
            raise ValueError(f"{path}: '{key}' is missing or empty")
    if not all(isinstance(s, int) for s in raw["seeds"]) or len(set(raw["seeds"])) != len(raw["seeds"]):
        raise ValueError(f"{path}: seeds must be distinct integers, got {raw['seeds']!r}")
    agents, agent_seeds, agent_tasks = {}, {}, {}
    for name, entry in raw["agents"].items():
        agents[str(name)], seeds, only = _agent(entry, f"{path}: agent {name!r}", raw["seeds"], raw["tasks"])
        if seeds is not None:
            agent_seeds[str(name)] = seeds
        if only is not None:
            agent_tasks[str(name)] = only
    tasks = {
        str(name): _task(entry, f"{path}: task {name!r}", agents) for name, entry in raw["tasks"].items()
    }
    for name in (*agents, *tasks):
        if not name or "/" in name or name.startswith("."):
            raise ValueError(f"{path}: {name!r} is not a usable directory name")
    common = _overrides(raw.get("common") or [], f"{path}: common", forbidden=_COMMON_FORBIDDEN)
    try:
        threshold = thresholds_of(raw.get("threshold"))
    except ValueError as exc:
        raise ValueError(f"{path}: {exc}") from None
    n_jobs = raw.get("n_jobs", 2)
    if not isinstance(n_jobs, int) or n_jobs < 1:
        raise ValueError(f"{path}: n_jobs must be an integer >= 1, got {n_jobs!r}")
    aggregate_envs = raw.get("aggregate_envs")
    if aggregate_envs is not None and (
        not isinstance(aggregate_envs, list)
        or not aggregate_envs
        or not all(isinstance(g, str) for g in aggregate_envs)
    ):
        raise ValueError(f"{path}: aggregate_envs must be a list of env label globs, got {aggregate_envs!r}")
    agent_keys = raw.get("agent_keys", [])
    if not isinstance(agent_keys, list) or not all(isinstance(k, str) and k for k in agent_keys):
        raise ValueError(f"{path}: agent_keys must be a list of dotted config keys, got {agent_keys!r}")
    return Suite(
        name=path.stem,
        seeds=tuple(raw["seeds"]),
        agents=agents,
        tasks=tasks,
        common=common,
        agent_seeds=agent_seeds,
        agent_tasks=agent_tasks,
        references=tuple(parse_references(raw["references"], f"{path}: references"))
        if "references" in raw
        else (),
        aggregate_envs=None if aggregate_envs is None else tuple(aggregate_envs),
        agent_keys=tuple(agent_keys),
        evaluate=parse_evaluation(raw["evaluate"], f"{path}: evaluate") if "evaluate" in raw else None,
        threshold=threshold,
        n_jobs=n_jobs,
        targets=tuple(parse_targets(raw["targets"], f"{path}: targets")) if "targets" in raw else (),
        bounds=parse_bounds(raw["bounds"], f"{path}: bounds") if "bounds" in raw else {},
        path=path,
    )


def _agent(
    entry: Any, where: str, suite_seeds: Sequence[int], suite_tasks: Mapping[str, Any]
) -> tuple[tuple[str, ...], tuple[int, ...] | None, tuple[str, ...] | None]:
    """An agent entry: a list of overrides, or ``{overrides: [...], seeds: [...], tasks: [...]}``
    where the agent runs fewer seeds than the suite (a costly peer; the suite's seeds) or some of
    its tasks only (a preset that exists for those). Returns (overrides, seeds, tasks)."""
    if not isinstance(entry, dict):
        return _overrides(entry, where, allowed=_AGENT_KEYS), None, None
    unknown = sorted(set(entry) - {"overrides", "seeds", "tasks"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: overrides, seeds, tasks")
    seeds = entry.get("seeds")
    if seeds is not None and (
        not isinstance(seeds, list)
        or not seeds
        or len(set(seeds)) != len(seeds)
        or not set(seeds) <= set(suite_seeds)
    ):
        raise ValueError(
            f"{where}: seeds must be distinct seeds of the suite's {list(suite_seeds)}, got {seeds!r}"
        )
    tasks = entry.get("tasks")
    if tasks is not None:
        missing = [t for t in tasks if t not in suite_tasks] if isinstance(tasks, list) else tasks
        if not isinstance(tasks, list) or not tasks or missing:
            raise ValueError(f"{where}: tasks must list tasks of the suite; unknown: {missing!r}")
    overrides = _overrides(entry.get("overrides"), where, allowed=_AGENT_KEYS)
    return overrides, None if seeds is None else tuple(seeds), None if tasks is None else tuple(tasks)


def _task(entry: Any, where: str, agents: Mapping[str, Any]) -> Task:
    if not isinstance(entry, dict):
        raise ValueError(f"{where}: expected a mapping with overrides and total_steps, got {entry!r}")
    unknown = sorted(set(entry) - {"overrides", "total_steps", "agents"})
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; valid keys: agents, overrides, total_steps")
    steps = entry.get("total_steps")
    if not isinstance(steps, int) or steps < 1:
        raise ValueError(f"{where}: total_steps must be a positive integer, got {steps!r}")
    subset = entry.get("agents")
    if subset is not None:
        missing = [a for a in subset if a not in agents]
        if missing or not subset:
            raise ValueError(f"{where}: unknown agent(s) {missing}; valid agents: {', '.join(agents)}")
        subset = tuple(subset)
    overrides = _overrides(entry.get("overrides") or [], where, allowed=_TASK_KEYS)
    return Task(overrides=overrides, total_steps=steps, agents=subset)


def _overrides(
    overrides: Any, where: str, allowed: Sequence[str] = (), forbidden: Sequence[str] = ()
) -> tuple[str, ...]:
    """Check a list of Hydra overrides: ``key=value`` whose top-level key is allowed."""
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ValueError(f"{where}: overrides must be a list of 'key=value' strings, got {overrides!r}")
    for override in overrides:
        key, eq, _ = override.partition("=")
        top = key.lstrip("+~").split(".")[0].split("/")[0]
        if not eq or not top:
            raise ValueError(f"{where}: {override!r} is not a 'key=value' override")
        if (allowed and top not in allowed) or top in forbidden:
            rule = f"may only set {', '.join(allowed)} keys" if allowed else f"may not set {top!r}"
            raise ValueError(f"{where}: {override!r}: this entry {rule}")
    return tuple(overrides)
