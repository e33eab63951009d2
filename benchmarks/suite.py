"""A suite of training runs: ``python -m benchmarks.suite memory`` (or any configs/suite/ name), resumable.

``configs/suite/<suite>.yaml`` declares the tasks (env overrides and a step budget), the agents
(algo and core overrides) and the seeds (read by benchmarks/suites/config.py). They expand into
cells, one training run each (benchmarks/suites/cells.py); this module skips the cells that have
finished, runs the rest as a Hydra multirun of ``jobs.train`` (one cell's run, under its lock:
benchmarks/suites/run.py and locks.py) and then writes the report with ``python -m report.compare``.
It adds no training code.

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
- **Stopping**: SIGINT (Ctrl-C, to the whole process group) or SIGTERM to the suite's process stops
  each running cell at its next update, saved, and no further cell starts (SIGTERM: the suite
  passes it to its workers that hold a cell's lock, and writes a ``stop`` file in the launch dir
  that every cell checks before it starts; a second SIGTERM ends the suite at once). Under SLURM
  the running jobs are not signalled from here (``scancel`` them); no further cell starts.
- **Archives**: each finished cell is also archived beside the report
  (``<out>/cells/<task>/<agent>/seed<k>.json.gz``, report/archive.py: its curve and done marker,
  ~100 kB), when it finishes and again before each report. A suite that declares ``evaluate:``
  (``{episodes: 20, seed: 100, mode: greedy}``) has each finished cell's final checkpoint
  evaluated first (benchmarks/suites/evaluation.py), so that its archive keeps the evaluation.
  Committed, archives keep the cells done on another machine, where the suite skips them and the
  report reads them: a suite longer than one machine's life finishes over several, each running
  a slice and committing its archives. A finished cell whose saved config differs from what its
  overrides compose to today (a default changed since; a key added since only where it is a
  learner key set off the value the cell ran at, its base or the one before the key, in a way
  that changes the run) stops the suite, naming the keys: its result describes the old defaults.
- **Slices**: ``--tasks`` and ``--agents`` (glob patterns) run part of a suite in the same
  directories; the whole suite later skips what the slice finished. The report after a slice
  is still the whole suite's (the other cells as done or pending).
- **Report**: ``python -m report.compare <suite_dir> --out benchmarks/results/<suite>
  [--threshold X] [--targets <suite config>]`` over every run under the suite dir, after the
  cells. A suite's ``targets:`` (report/targets.py) are checked there: met, not met or pending;
  its ``bounds:`` (env label -> [random play, best]) normalise the aggregate. Agents are labelled
  ``<algo>-<core>`` as everywhere; a suite whose agents share an algo and core names the keys that
  tell them apart in ``agent_keys:`` (e.g. ``[algo.ent_coef_final]``: the report's --agent-key).

A task entry may only set ``env`` and ``policy`` keys and an agent entry only ``algo``, ``core``,
``num_envs`` and ``tuned`` keys (the batch is the learner's; an agent's ``num_envs`` wins over
``common``): the task describes the task, never the learner.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning (see train.py); set before any worker imports torch.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import contextlib
import json
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from benchmarks.suites.cells import (
    ERROR_FILE,
    MARKER,
    Cell,
    archive_cell,
    cell_finished,
    cell_status,
    expand,
    pending_cells,
    select,
    write_cells,
)
from benchmarks.suites.config import CONFIGS, ROOT, SUITE_CONFIGS, Suite, Task, load_suite, suite_names
from benchmarks.suites.evaluation import EvaluationSpec
from benchmarks.suites.locks import lock_path, lock_pid
from benchmarks.suites.run import compose_cell, config_drift, keep_finished, reset_stop, run_cell

# The suite's API in one place: what benchmarks/suites/ defines, and the launching of its cells here.
__all__ = [
    "ERROR_FILE",
    "MARKER",
    "ROOT",
    "STOP_FILE",
    "SUITE_CONFIGS",
    "Cell",
    "EvaluationSpec",
    "Suite",
    "Task",
    "archive_cell",
    "cell_finished",
    "cell_status",
    "compose_cell",
    "config_drift",
    "default_out",
    "expand",
    "keep_finished",
    "launch",
    "load_suite",
    "main",
    "pending_cells",
    "report",
    "run_cell",
    "select",
    "suite_names",
]

_JOB_CONFIG = "_benchmarks_suite_cell"  # the multirun app's primary config, in Hydra's ConfigStore
STOP_FILE = "stop"  # in a launch's dir: written on SIGTERM to the suite; no cell starts after it

# ---------------------------------------------------------------- launch


def _register_job_config() -> None:
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=_JOB_CONFIG, node={"cells_file": "???", "cell": "???"})


def _job(cfg: DictConfig) -> dict[str, Any]:
    """The multirun app's task: run cell number ``cfg.cell`` of ``cfg.cells_file``."""
    cells_file = Path(cfg.cells_file)
    cells = json.loads(cells_file.read_text())
    return run_cell(Cell.from_dict(cells[int(cfg.cell)]), stop_file=_stop_file(cells_file.parent))


def _stop_file(launch_dir: Path) -> Path:
    """Written in a launch's dir (beside its cells.json) on SIGTERM: no cell starts after it."""
    return launch_dir / STOP_FILE


@contextlib.contextmanager
def _sigterm_stops_the_cells(cells: Sequence[Cell], stop_file: Path) -> Iterator[None]:
    """SIGTERM to the suite's process stops its cells as Ctrl-C does: no cell starts after it
    (``stop_file``, which every cell checks), and each of this process's children that holds a
    cell's lock (a joblib worker) gets the signal, to stop at its next update, saved. Another
    slice's workers and remote (SLURM) cells are left alone. A second SIGTERM ends the suite at
    once, as before. Without this, the workers of a terminated suite would train on, orphaned."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.getsignal(signal.SIGTERM)

    def forward(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, old)  # the next one ends the suite
        stop_file.touch()  # first: a cell locked after the scan below sees it
        for cell in cells:
            pid = lock_pid(lock_path(Path(cell.run_dir)))
            if pid is not None and pid != os.getpid() and _parent_pid(pid) == os.getpid():
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signum)

    signal.signal(signal.SIGTERM, forward)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _parent_pid(pid: int) -> int | None:
    """A process's parent (Linux's /proc); None where that cannot be read."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[1])  # after "pid (comm)": state, ppid


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

    if not cells:
        return
    reset_stop()  # a new launch from this process (the in-process launcher's) starts afresh
    launch_dir = Path(launch_dir).resolve()
    launch_dir.mkdir(parents=True, exist_ok=True)
    _stop_file(launch_dir).unlink(missing_ok=True)
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
        with _argv(argv), _sigterm_stops_the_cells(cells, _stop_file(launch_dir)):
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


def default_out(suite: Suite) -> Path:
    """Where a suite's report and archives go by default: ``benchmarks/results/<suite>``."""
    return ROOT / "benchmarks" / "results" / suite.name


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
    parser.add_argument(
        "--out",
        help="report directory, with the cells' archives in its cells/ (default benchmarks/results/<suite>)",
    )
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
        out = Path(args.out) if args.out else default_out(suite)
        every = expand(suite, suite_dir, out / "cells")
        cells = select(every, args.tasks, args.agents)
        todo = pending_cells(cells)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    # A finished cell whose defaults changed since would pass for the new config (cells match on
    # their overrides): say so, and run nothing until it is deleted or the change undone.
    drifted = {cell: diffs for cell in cells if cell not in todo and (diffs := config_drift(cell))}
    for cell, diffs in drifted.items():
        print(
            f"{'warning' if args.list or args.report_only else 'error'}: {cell.task}/{cell.agent}/"
            f"seed{cell.seed} finished with another config than its overrides give now: "
            f"{'; '.join(diffs[:5])}{' ...' if len(diffs) > 5 else ''}. Delete its archive "
            f"({cell.archive}) and run dir to re-run it with today's defaults",
            file=sys.stderr,
        )
    if drifted and not (args.list or args.report_only):
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
        # The report is the whole suite's: a slice (--tasks/--agents) runs part of it, and
        # reporting only that part would overwrite the suite's report with a fragment.
        archived = [path for cell in every if cell_finished(cell) and (path := keep_finished(cell))]
        if archived:
            print(f"{len(archived)} finished cells archived in {out / 'cells'} (commit them)", flush=True)
        cells_file = write_cells(every, out / "cells.json", suite.agent_keys)
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
