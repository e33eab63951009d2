"""The memory-task suite: ``python -m benchmarks.suite memory`` (or ``quick``), resumable.

``configs/suite/<suite>.yaml`` declares the tasks (env overrides and a step budget), the agents
(algo and core overrides) and the seeds. This module expands them into cells, one training run
each, skips the cells that have finished, runs the rest as a Hydra multirun of ``jobs.train``
and then writes the report with ``python -m report.compare``. It adds no training code.

- **Cells** run in ``<suite_dir>/<task>/<agent>/seed<k>`` (default suite_dir ``runs/suite/<suite>``),
  ordered seed first, so a suite stopped half-way has whole seeds to compare.
- **Launcher**: Hydra's joblib launcher with ``hydra.launcher.n_jobs`` (default: the suite's
  ``n_jobs``) cells at a time; any other Hydra launcher by override, e.g.
  ``hydra/launcher=submitit_slurm hydra.launcher.partition=cpu hydra.launcher.timeout_min=120``.
  The command waits for the cells (keep it in tmux, or in a job of its own); if it dies, running
  SLURM cells go on, and running it again before they end would start them a second time.
- **Resuming**: a cell that trained its whole budget leaves ``suite_cell.json`` (the cell, the
  summary, the wall time) and is skipped from then on. A cell without it starts again, from its
  checkpoint (``resume=``; ``checkpoint.pt``, or ``checkpoint.zip`` for algo=rppo) when that run
  had the same config, else from scratch in a cleared directory. A cell that raises is logged in
  ``suite_cell_error.txt`` and the others go on.
- **Slices**: ``--tasks`` and ``--agents`` (glob patterns) run part of a suite in the same
  directories; the whole suite later skips what the slice finished.
- **Report**: ``python -m report.compare <suite_dir> --out benchmarks/results/<suite>
  [--threshold X] [--targets <suite config>]`` over every run under the suite dir, after the
  cells. A suite's ``targets:`` (report/targets.py) are checked there: met, not met or pending;
  its ``bounds:`` (env label -> [random play, best]) normalise the aggregate. Agents are labelled
  ``<algo>-<core>`` as everywhere; a suite whose agents share an algo and core names the keys that
  tell them apart in ``agent_keys:`` (e.g. ``[algo.ent_coef_final]``: the report's --agent-key).

A task entry may only set ``env`` and ``policy`` keys and an agent entry only ``algo``, ``core``
and ``num_envs`` keys (the batch is the learner's; an agent's ``num_envs`` wins over ``common``):
the task describes the task, never the learner.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (see train.py); set before any worker imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import dataclasses
import json
import logging
import math
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Iterator, Mapping, Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from report.records import Reference
from report.references import parse_references
from report.runs import agent_label, env_label
from report.targets import Target, parse_targets
from report.thresholds import parse_bounds, thresholds_of

__all__ = [
    "MARKER",
    "SUITE_CONFIGS",
    "Cell",
    "Suite",
    "Task",
    "cell_finished",
    "compose_cell",
    "expand",
    "launch",
    "load_suite",
    "main",
    "pending_cells",
    "report",
    "run_cell",
    "select",
    "suite_names",
]

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
SUITE_CONFIGS = CONFIGS / "suite"
MARKER = "suite_cell.json"  # written into a cell's run dir once it has trained its whole budget
ERROR_FILE = "suite_cell_error.txt"
_JOB_CONFIG = "_benchmarks_suite_cell"  # the multirun app's primary config, in Hydra's ConfigStore
# Top-level config keys each kind of entry may set (the part before the first dot or slash).
_TASK_KEYS = ("env", "policy")
_AGENT_KEYS = ("algo", "core", "num_envs", "tuned")  # tuned: a preset of learner keys (configs/tuned)
_COMMON_FORBIDDEN = (*_TASK_KEYS, "algo", "core", "seed", "total_steps", "resume", "log_dir")

log = logging.getLogger(__name__)

# The signal that stopped a cell in this process, if any. A launcher worker (joblib's loky) takes
# cell after cell: once a SIGTERM or SIGINT aimed at it has stopped one, it must not start the next.
_stopped_by: int | None = None


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
    path: Path | None = None  # the config file (the report reads its targets and bounds from it)

    def seeds_of(self, agent: str) -> tuple[int, ...]:
        """The seeds an agent runs: its own ``seeds`` where the entry gives them, else the suite's."""
        return self.agent_seeds.get(agent, self.seeds)

    def runs(self, task: str, agent: str) -> bool:
        """Whether the agent runs on the task: both the task's ``agents`` and the agent's ``tasks``
        (where given) allow it."""
        allowed = self.tasks[task].agents
        return (allowed is None or agent in allowed) and task in self.agent_tasks.get(agent, (task,))


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run of the suite: train.py's config = config.yaml + ``overrides``."""

    task: str
    agent: str
    seed: int
    total_steps: int
    overrides: tuple[str, ...]
    run_dir: str

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "overrides": list(self.overrides)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        return cls(**{**data, "overrides": tuple(data["overrides"])})


# ---------------------------------------------------------------- suite config


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
        "aggregate_envs", "agent_keys",
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


# ---------------------------------------------------------------- cells


def expand(suite: Suite, suite_dir: str | Path) -> list[Cell]:
    """Every cell of the suite, seed first, then task and agent in the config's order."""
    suite_dir = Path(suite_dir).resolve()
    cells = []
    for seed in suite.seeds:
        for task_name, task in suite.tasks.items():
            for agent in task.agents or tuple(suite.agents):
                if seed not in suite.seeds_of(agent) or not suite.runs(task_name, agent):
                    continue
                overrides = (
                    *suite.common,
                    *task.overrides,
                    *suite.agents[agent],
                    f"seed={seed}",
                    f"total_steps={task.total_steps}",
                )
                run_dir = suite_dir / task_name / agent / f"seed{seed}"
                cells.append(Cell(task_name, agent, seed, task.total_steps, overrides, str(run_dir)))
    return cells


def select(cells: Sequence[Cell], tasks: Sequence[str] | None, agents: Sequence[str] | None) -> list[Cell]:
    """The cells whose task and agent match one of the glob patterns (all where None): a slice of
    a suite, run on its own and resumed or completed later by the whole suite. A pattern that
    matches no task or agent is an error (often a Hydra override typed after ``--tasks``)."""
    for kind, patterns, names in (
        ("task", tasks, {c.task for c in cells}),
        ("agent", agents, {c.agent for c in cells}),
    ):
        for pattern in patterns or ():
            if not any(fnmatch(name, pattern) for name in names):
                raise ValueError(
                    f"--{kind}s {pattern!r} matches no {kind}; valid: {', '.join(sorted(names))} "
                    "(Hydra overrides go before --tasks/--agents)"
                )
    picked = [
        c
        for c in cells
        if (tasks is None or any(fnmatch(c.task, p) for p in tasks))
        and (agents is None or any(fnmatch(c.agent, p) for p in agents))
    ]
    if not picked:
        raise ValueError(f"no cell matches tasks {tasks} and agents {agents}")
    return picked


def cell_finished(cell: Cell) -> bool:
    """True when the cell's run dir holds a done marker for these same overrides.

    Raises if the marker is for other overrides (a suite config edited under a finished suite):
    the old run would otherwise pass for the new cell.
    """
    marker = Path(cell.run_dir) / MARKER
    if not marker.is_file():
        return False
    done = json.loads(marker.read_text())["cell"]
    if tuple(done["overrides"]) != cell.overrides:
        raise ValueError(
            f"{marker} is for the overrides {done['overrides']}, but the suite now asks for "
            f"{list(cell.overrides)}; delete that run dir to re-run it, or use another --dir"
        )
    return True


def pending_cells(cells: Sequence[Cell]) -> list[Cell]:
    """The cells still to run."""
    return [cell for cell in cells if not cell_finished(cell)]


@dataclasses.dataclass(frozen=True)
class CellStatus:
    """Where a cell stands: ``done``; ``running`` (its run dir changed in the last
    ``RUNNING_WINDOW_S`` seconds); or ``pending``: not started, ``stopped`` part-way (it resumes
    from its checkpoint) or ``failed`` (see its ``suite_cell_error.txt``). ``step``: env steps
    logged so far (None before the first update)."""

    status: str
    step: int | None = None
    detail: str = ""  # for pending: "", "stopped" or "failed"

    def describe(self, total_steps: int) -> str:
        at = "" if self.step is None else f" at {self.step:,}/{total_steps:,} steps"
        if self.status == "pending" and self.detail:
            return f"pending ({self.detail}{at})"
        return self.status + ("" if self.status == "done" else at)


RUNNING_WINDOW_S = 600.0  # TensorBoard flushes every 2 minutes; a run quiet for 10 is not running


def cell_status(cell: Cell, now: float | None = None) -> CellStatus:
    """The cell's :class:`CellStatus`, from its run dir (the done marker, the latest event's step,
    the files' modification times)."""
    if cell_finished(cell):
        return CellStatus("done", cell.total_steps)
    run_dir = Path(cell.run_dir)
    files = [p for p in run_dir.iterdir() if p.is_file()] if run_dir.is_dir() else []
    if not files:
        return CellStatus("pending")
    step = latest_step(run_dir)
    if (ERROR_FILE in {p.name for p in files}) and step is None:
        return CellStatus("pending", None, "failed")
    newest = max(p.stat().st_mtime for p in files)
    if (time.time() if now is None else now) - newest < RUNNING_WINDOW_S:
        return CellStatus("running", step)
    return CellStatus("pending", step, "failed" if (run_dir / ERROR_FILE).is_file() else "stopped")


def latest_step(run_dir: Path) -> int | None:
    """The env step of a run's latest logged ``time/fps`` point (one per update), or None."""
    if not any(run_dir.glob("events.out.tfevents.*")):
        return None
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(run_dir), size_guidance={ea.SCALARS: 1})  # the last point is kept
    acc.Reload()
    if "time/fps" not in acc.Tags()["scalars"]:
        return None
    return int(acc.Scalars("time/fps")[-1].step)


def cell_labels(
    cells: Sequence[Cell], agent_keys: Sequence[str] = ()
) -> dict[tuple[str, str], tuple[str, str]]:
    """(task, agent) -> the report's (env, agent) labels, from the composed config of one cell each
    (``agent_keys``: the suite's, which split agents that share an algo and core)."""
    from hydra import compose, initialize_config_dir

    firsts = {(c.task, c.agent): c for c in reversed(cells)}
    labels = {}
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        for key, cell in firsts.items():
            config = OmegaConf.to_container(compose("config", overrides=list(cell.overrides)), resolve=True)
            env = env_label(config["env"], config.get("policy")) or str(config["env"].get("name"))
            labels[key] = (env, agent_label(config, agent_keys))
    return labels


def write_cells(cells: Sequence[Cell], path: Path, agent_keys: Sequence[str] = ()) -> Path:
    """The report's ``--cells`` file: each cell with its labels, status and step (report/cells.py)."""
    labels = cell_labels(cells, agent_keys)
    rows = []
    for cell in cells:
        state = cell_status(cell)
        env, agent = labels[(cell.task, cell.agent)]
        rows.append(
            {"env": env, "agent": agent, "task": cell.task, "suite_agent": cell.agent, "seed": cell.seed,
             "run_dir": cell.run_dir, "status": state.status, "step": state.step,
             "total_steps": cell.total_steps}
        )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": rows}, indent=1) + "\n")
    return path


def compose_cell(cell: Cell) -> DictConfig:
    """train.py's config for the cell, composed as the CLI would (inside a Hydra app or not)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside the multirun app, whose search path is configs/
        return compose("config", overrides=list(cell.overrides))
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=list(cell.overrides))


def run_cell(cell: Cell) -> dict[str, Any]:
    """Train one cell (resuming its checkpoint if it has one) and mark it done if it finished.

    Returns ``{"status": "done" | "stopped" | "failed" | "busy", ...}``; never raises for a failed
    run, so that one bad cell does not cancel the others (joblib cancels pending jobs on an
    exception). Once SIGINT or SIGTERM has stopped a cell (saved, to resume), this process starts no
    other cell: "stopped" without training, so that a signalled worker or suite ends rather than
    going on. A cell another live suite process holds (its lock file beside the run dir) is "busy":
    two overlapping slices of a suite never train one cell into one run dir.
    """
    if _stopped_by is not None:  # a signal already stopped a cell here: start no other
        name = signal.Signals(_stopped_by).name
        print(f"suite cell {cell.task}/{cell.agent}/seed{cell.seed} not started (this worker got {name})")
        return {"status": "stopped", "cell": cell.to_dict(), "signal": _stopped_by}
    run_dir = Path(cell.run_dir)
    lock = run_dir.parent / f".{run_dir.name}.lock"
    holder = _take_lock(lock)
    if holder is not None:  # another suite process (an overlapping slice) is training this cell
        print(f"suite cell {cell.task}/{cell.agent}/seed{cell.seed} skipped: {holder} runs it ({lock})")
        return {"status": "busy", "cell": cell.to_dict(), "holder": holder}
    try:
        return _run_locked(cell, run_dir)
    finally:
        lock.unlink(missing_ok=True)


def _take_lock(path: Path) -> str | None:
    """Take the cell's lock file (``host pid``, created atomically); None when taken, else who
    holds it. A lock left by a dead process of this host is stale and taken over; one from another
    host (SLURM) cannot be checked and counts as held: delete it by hand if that job is gone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            host, _, pid = path.read_text().partition(" ")
            if not pid.strip():  # created this instant, not yet written
                return f"a process taking {path} now"
            if host != socket.gethostname() or _alive(int(pid)):
                return f"process {pid} on {host}"
            path.unlink(missing_ok=True)  # stale: its process is gone
            continue
        with os.fdopen(fd, "w") as f:
            f.write(me)
        return None
    return f"a process that keeps taking {path}"


def _alive(pid: int) -> bool:
    """Whether a process with this pid runs on this host."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


def _run_locked(cell: Cell, run_dir: Path) -> dict[str, Any]:
    global _stopped_by
    if cell_finished(cell):  # another slice finished it since this launch listed it
        return {"status": "done", "cell": cell.to_dict()}
    try:
        from agents.checkpoint import checkpoint_name
        from jobs import train

        cfg = compose_cell(cell)
        checkpoint = run_dir / checkpoint_name(cfg.algo.name)  # rppo: SB3's zip
        resumed = checkpoint.is_file() and _same_config(run_dir / "config.yaml", cfg)
        if resumed:
            cfg.resume = str(checkpoint)
        elif run_dir.exists():  # a stale or foreign partial run: its events would mix with ours
            shutil.rmtree(run_dir)
        print(f"suite cell {cell.task}/{cell.agent}/seed{cell.seed}{' (resumed)' if resumed else ''}")
        start = time.time()
        summary = train(cfg, run_dir)
        wall = time.time() - start
    except Exception:
        error = traceback.format_exc()
        log.error("suite cell %s/%s/seed%d failed:\n%s", cell.task, cell.agent, cell.seed, error)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ERROR_FILE).write_text(error)
        return {"status": "failed", "cell": cell.to_dict(), "error": error}
    if summary["global_step"] < cfg.total_steps:  # stopped by a signal: it resumes next time
        _stopped_by = summary.get("stop_signal") or _stopped_by
        return {"status": "stopped", "cell": cell.to_dict(), "summary": summary}
    record = {
        "cell": cell.to_dict(),
        "summary": summary,
        "wall_s": round(wall, 1),
        "resumed": resumed,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    tmp = run_dir / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(_finite(record), indent=2, default=str))
    tmp.replace(run_dir / MARKER)  # atomic: a marker is never half written
    return {"status": "done", **record}


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so that the marker is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _same_config(path: Path, cfg: DictConfig) -> bool:
    """Whether the run saved at ``path`` had this config (``resume`` aside)."""
    if not path.is_file():
        return False
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    new = OmegaConf.to_container(cfg, resolve=True)
    saved.pop("resume", None)
    new.pop("resume", None)
    return saved == new


# ---------------------------------------------------------------- launch


def _register_job_config() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=_JOB_CONFIG, node={"cells_file": "???", "cell": "???"})


def _job(cfg: DictConfig) -> dict[str, Any]:
    """The multirun app's task: run cell number ``cfg.cell`` of ``cfg.cells_file``."""
    cells = json.loads(Path(cfg.cells_file).read_text())
    return run_cell(Cell.from_dict(cells[int(cfg.cell)]))


@contextlib.contextmanager
def _argv(argv: list[str]) -> Iterator[None]:
    saved = sys.argv
    sys.argv = argv
    try:
        yield
    finally:
        sys.argv = saved


def launch(
    cells: Sequence[Cell], launch_dir: str | Path, overrides: Sequence[str] = (), n_jobs: int = 2
) -> None:
    """Run ``cells`` as one Hydra multirun (``cell=0,1,...``) under ``launch_dir``.

    ``overrides`` are Hydra overrides for the launcher. Without ``hydra/launcher=...`` it is
    joblib; a joblib launcher gets ``hydra.launcher.n_jobs=n_jobs`` unless one is given.
    """
    import hydra
    from hydra.core.global_hydra import GlobalHydra

    global _stopped_by
    if not cells:
        return
    _stopped_by = None  # a new launch from this process (the in-process launcher's) starts afresh
    launch_dir = Path(launch_dir).resolve()
    launch_dir.mkdir(parents=True, exist_ok=True)
    cells_file = launch_dir / "cells.json"
    cells_file.write_text(json.dumps([c.to_dict() for c in cells], indent=1))
    extra = list(overrides)
    launcher = next((o.split("=", 1)[1] for o in extra if o.startswith("hydra/launcher=")), None)
    if launcher is None:
        launcher = "joblib"
        extra.insert(0, "hydra/launcher=joblib")
    if launcher == "joblib" and not any(o.startswith("hydra.launcher.n_jobs=") for o in extra):
        extra.append(f"hydra.launcher.n_jobs={n_jobs}")
    argv = [
        "benchmarks.suite",
        "--multirun",
        f"cell={','.join(str(i) for i in range(len(cells)))}",
        f"cells_file='{cells_file}'",
        f"hydra.sweep.dir='{launch_dir}'",
        "hydra.sweep.subdir=cell${cell}",
        "hydra.job.chdir=false",
        *extra,
    ]
    _register_job_config()
    app = hydra.main(config_path=str(CONFIGS), config_name=_JOB_CONFIG, version_base="1.3")(_job)
    GlobalHydra.instance().clear()  # a previous launch in this process leaves it set
    try:
        with _argv(argv):
            app()
    finally:
        GlobalHydra.instance().clear()


def report(
    suite_dir: str | Path | None,
    out: str | Path,
    threshold: Mapping[str, float] | None = None,
    module: str = "report.compare",
    targets: str | Path | None = None,
    bounds: str | Path | None = None,
    cells: str | Path | None = None,
    references: str | Path | None = None,
    aggregate_envs: Sequence[str] | None = None,
    agent_keys: Sequence[str] = (),
) -> int:
    """``python -m report.compare [<suite_dir> | --cells FILE] --out <out> [--threshold X]
    [--targets FILE] [--bounds FILE] [--references FILE] [--aggregate-envs GLOB...]``; its exit
    status. With ``cells`` (a suite's cells.json) the report reads those cells only."""
    # Paths relative to the repo root where they can be: the report quotes its command.
    cmd = [sys.executable, "-m", module]
    cmd += ["--cells", _from_root(cells)] if cells is not None else [_from_root(suite_dir)]
    cmd += ["--out", _from_root(out)]
    for glob, value in (threshold or {}).items():  # "*" (every env) is compare's bare number
        cmd += ["--threshold", f"{value:g}" if glob == "*" else f"{glob}={value:g}"]
    if targets is not None:
        cmd += ["--targets", _from_root(targets)]
    if bounds is not None:
        cmd += ["--bounds", _from_root(bounds)]
    if references is not None:
        cmd += ["--references", _from_root(references)]
    if aggregate_envs:
        cmd += ["--aggregate-envs", *aggregate_envs]
    for key in agent_keys:
        cmd += ["--agent-key", key]
    print("+ " + shlex.join(cmd), flush=True)
    return subprocess.run(cmd, cwd=ROOT).returncode


def _from_root(path: str | Path) -> str:
    path = Path(path).resolve()
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


# ---------------------------------------------------------------- CLI


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m benchmarks.suite SUITE [options] [hydra overrides]``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.suite",
        description="Run a suite of tasks x agents x seeds (configs/suite/<suite>.yaml), resumably, "
        "then compare the runs.",
        epilog="Examples: python -m benchmarks.suite quick; python -m benchmarks.suite memory "
        "hydra.launcher.n_jobs=4; python -m benchmarks.suite memory hydra/launcher=submitit_slurm "
        "hydra.launcher.partition=cpu hydra.launcher.cpus_per_task=1 hydra.launcher.timeout_min=180",
    )
    parser.add_argument("suite", help=f"a suite in configs/suite ({', '.join(suite_names())}) or a YAML path")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides for the launcher (hydra/launcher=...)")
    parser.add_argument("--dir", help="where the cells run (default runs/suite/<suite>)")
    parser.add_argument("--out", help="report directory (default benchmarks/results/<suite>)")
    parser.add_argument("--list", action="store_true", help="list the cells and their status, run nothing")
    parser.add_argument("--no-report", action="store_true", help="run the cells, skip report.compare")
    parser.add_argument(
        "--report-only",
        action="store_true",
        help="run nothing: write the report of the cells finished so far (others shown as pending)",
    )
    parser.add_argument("--tasks", nargs="+", metavar="GLOB", help="run only these tasks (e.g. 'repeat-*')")
    parser.add_argument(
        "--agents", nargs="+", metavar="GLOB", help="run only these agents (e.g. rtrl-rtu rppo)"
    )
    args = parser.parse_intermixed_args(argv)
    try:
        suite = load_suite(args.suite)
        suite_dir = Path(args.dir or ROOT / "runs" / "suite" / suite.name).resolve()
        cells = select(expand(suite, suite_dir), args.tasks, args.agents)
        todo = pending_cells(cells)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    steps = sum(c.total_steps for c in todo)
    print(
        f"suite {suite.name}: {len(cells)} cells ({len(suite.tasks)} tasks, {len(suite.agents)} agents, "
        f"{len(suite.seeds)} seeds) in {suite_dir}; {len(cells) - len(todo)} done, {len(todo)} to run "
        f"({steps:,} env steps)",
        flush=True,
    )
    if args.list:
        states = [cell_status(cell) for cell in cells]
        count = {s: sum(st.status == s for st in states) for s in ("done", "running", "pending")}
        print(f"  {count['done']} done, {count['running']} running, {count['pending']} pending")
        for cell, state in zip(cells, states, strict=True):
            print(f"  {state.describe(cell.total_steps)}: {cell.task}/{cell.agent}/seed{cell.seed}: "
                  f"{' '.join(cell.overrides)}")  # fmt: skip
        return 0
    status = 0
    if not args.report_only:
        # the pid keeps apart two slices launched in the same second (each writes its cells.json)
        launch_dir = suite_dir / ".launch" / f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
        launch(todo, launch_dir, args.overrides, suite.n_jobs)
        failed = pending_cells(cells)
        for cell in failed:
            error = Path(cell.run_dir) / ERROR_FILE
            print(
                f"not finished: {cell.task}/{cell.agent}/seed{cell.seed}"
                + (f" (see {error})" if error.is_file() else "")
            )
        status = 1 if failed else 0
    if not args.no_report:
        out = Path(args.out) if args.out else ROOT / "benchmarks" / "results" / suite.name
        cells_file = write_cells(cells, out / "cells.json", suite.agent_keys)
        given = suite.path if suite.path is not None else None
        status = (
            report(
                None,
                out,
                suite.threshold,
                targets=given if suite.targets else None,
                bounds=given if suite.bounds else None,
                cells=cells_file,
                references=given if suite.references else None,
                aggregate_envs=suite.aggregate_envs,
                agent_keys=suite.agent_keys,
            )
            or status
        )
    return status


if __name__ == "__main__":
    # Run as benchmarks.suite, not __main__, so that launcher workers can import the job by name.
    from benchmarks.suite import main as _main

    sys.exit(_main())
