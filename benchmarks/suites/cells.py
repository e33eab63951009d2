"""A suite's cells: one training run each (task x agent x seed), where it runs, where it stands
(done, running or pending) from its run dir, and its archive (report/archive.py), which keeps a
finished cell done on a machine that never had its run dir."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from benchmarks.suites.config import CONFIGS, Suite
from benchmarks.suites.evaluation import EvaluationSpec
from benchmarks.suites.locks import lock_holder, lock_path
from report.archive import archive_run, load_archive
from report.runs import agent_label, env_label

__all__ = [
    "ERROR_FILE",
    "MARKER",
    "Cell",
    "CellStatus",
    "archive_cell",
    "cell_finished",
    "cell_status",
    "expand",
    "latest_step",
    "pending_cells",
    "select",
    "write_cells",
]

MARKER = "suite_cell.json"  # written into a cell's run dir once it has trained its whole budget
ERROR_FILE = "suite_cell_error.txt"


@dataclasses.dataclass(frozen=True)
class Cell:
    """One training run of the suite: train.py's config = config.yaml + ``overrides``."""

    task: str
    agent: str
    seed: int
    total_steps: int
    overrides: tuple[str, ...]
    run_dir: str
    archive: str | None = None  # where the finished cell is archived (None: nowhere)
    evaluate: EvaluationSpec | None = None  # how the finished cell is evaluated (None: not)

    def to_dict(self) -> dict[str, Any]:
        return {**dataclasses.asdict(self), "overrides": list(self.overrides)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Cell:
        spec = data.get("evaluate")
        return cls(**{
            **data,
            "overrides": tuple(data["overrides"]),
            "evaluate": None if spec is None else EvaluationSpec(**spec),
        })  # fmt: skip


def expand(suite: Suite, suite_dir: str | Path, archive_dir: str | Path | None = None) -> list[Cell]:
    """Every cell of the suite, seed first, then task and agent in the config's order; archived
    (when ``archive_dir`` is given) to ``<archive_dir>/<task>/<agent>/seed<k>.json.gz``."""
    suite_dir = Path(suite_dir).resolve()
    archive_dir = None if archive_dir is None else Path(archive_dir).resolve()
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
                archive = archive_dir and str(archive_dir / task_name / agent / f"seed{seed}.json.gz")
                cells.append(
                    Cell(task_name, agent, seed, task.total_steps, overrides, str(run_dir), archive,
                         evaluate=suite.evaluate)
                )  # fmt: skip
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
    """True when the cell's run dir holds a done marker, or its archive exists, for these same
    overrides.

    Raises if the marker or archive is for other overrides (a suite config edited under a finished
    suite): the old run would otherwise pass for the new cell.
    """
    marker = Path(cell.run_dir) / MARKER
    if marker.is_file():
        done, source = json.loads(marker.read_text())["cell"], marker
    elif cell.archive is not None and Path(cell.archive).is_file():
        done, source = load_archive(cell.archive)["extra"]["cell"], Path(cell.archive)
    else:
        return False
    if tuple(done["overrides"]) != cell.overrides:
        raise ValueError(
            f"{source} is for the overrides {done['overrides']}, but the suite now asks for "
            f"{list(cell.overrides)}; delete it to re-run that cell, or use another --dir and --out"
        )
    return True


def archive_cell(cell: Cell) -> Path | None:
    """Archive a finished cell's run dir (its marker as the archive's ``extra``) unless its archive
    is newer than every file of the run dir; the archive's path, None when there is nothing to
    archive (no archive path, or no finished run dir here)."""
    run_dir, marker = Path(cell.run_dir), Path(cell.run_dir) / MARKER
    if cell.archive is None or not marker.is_file():
        return None
    archive = Path(cell.archive)
    newest = max(p.stat().st_mtime_ns for p in run_dir.iterdir() if p.is_file())
    if archive.is_file() and archive.stat().st_mtime_ns > newest:
        return archive
    return archive_run(run_dir, archive, extra=json.loads(marker.read_text()))


def pending_cells(cells: Sequence[Cell]) -> list[Cell]:
    """The cells still to run."""
    return [cell for cell in cells if not cell_finished(cell)]


@dataclasses.dataclass(frozen=True)
class CellStatus:
    """Where a cell stands: ``done``; ``running`` (a live suite process holds its lock, on this
    host or, for SLURM, another); or ``pending``: not started, ``stopped`` part-way (it resumes
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


def cell_status(cell: Cell) -> CellStatus:
    """The cell's :class:`CellStatus`, from its run dir (the done marker, the latest event's step,
    the error file) and its lock."""
    if cell_finished(cell):
        return CellStatus("done", cell.total_steps)
    run_dir = Path(cell.run_dir)
    step = latest_step(run_dir) if run_dir.is_dir() else None
    if lock_holder(lock_path(run_dir)) is not None:
        return CellStatus("running", step)
    files = [p for p in run_dir.iterdir() if p.is_file()] if run_dir.is_dir() else []
    if not files:
        return CellStatus("pending")
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
             "run_dir": cell.run_dir, "archive": cell.archive, "status": state.status, "step": state.step,
             "total_steps": cell.total_steps}
        )  # fmt: skip
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"cells": rows}, indent=1) + "\n")
    return path
