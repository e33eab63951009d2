"""A suite's cells as the report reads them: which runs to compare, and what is still to come.

``benchmarks.suite`` writes ``cells.json`` (``{"cells": [{"env", "agent", "seed", "run_dir",
"archive", "status", "step"}, ...]}``, labels as the report makes them) and passes it with
``--cells``. The report then compares the runs of the ``done`` cells only (each from its run dir,
or from its archive where this machine has no run dir: report/archive.py), and counts the others
per env and agent (``running``: a live suite process holds it; ``pending``: not started, stopped,
or failed), so that a suite part-way through gives a report, and a run dir left over from an
earlier version of the suite is not mixed in."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from report.records import CellCount

__all__ = ["STATUSES", "count_cells", "done_sources", "load_cells"]

STATUSES = ("done", "running", "pending")


def load_cells(path: str | Path) -> list[dict[str, Any]]:
    """The cells of a ``cells.json``; raises ValueError naming a bad entry."""
    data = json.loads(Path(path).read_text())
    cells = data.get("cells") if isinstance(data, Mapping) else None
    if not isinstance(cells, list):
        raise ValueError(f"{path}: expected {{'cells': [...]}}")
    for i, cell in enumerate(cells):
        if not isinstance(cell, Mapping) or not {"env", "agent", "run_dir", "status"} <= set(cell):
            raise ValueError(f"{path}: cell {i} needs env, agent, run_dir and status, got {cell!r}")
        if cell["status"] not in STATUSES:
            raise ValueError(f"{path}: cell {i}: status must be one of {STATUSES}, got {cell['status']!r}")
    return cells


def done_sources(cells: Sequence[Mapping[str, Any]]) -> tuple[list[Path], list[Path], list[str]]:
    """The finished cells' run dirs, the archives of those whose run dir is not here, and the
    cells that have neither (``task/agent/seed<k>``)."""
    dirs, archives, missing = [], [], []
    for cell in cells:
        if cell["status"] != "done":
            continue
        run_dir, archive = Path(cell["run_dir"]), cell.get("archive")
        if run_dir.is_dir() and any(run_dir.glob("events.out.tfevents.*")):
            dirs.append(run_dir)
        elif archive is not None and Path(archive).is_file():
            archives.append(Path(archive))
        else:
            missing.append(f"{cell.get('task')}/{cell.get('suite_agent')}/seed{cell.get('seed')}")
    return dirs, archives, missing


def count_cells(cells: Sequence[Mapping[str, Any]]) -> list[CellCount]:
    """Cells per (env, agent) by status, sorted by env and agent."""
    counts: dict[tuple[str, str], dict[str, int]] = {}
    for cell in cells:
        key = (str(cell["env"]), str(cell["agent"]))
        counts.setdefault(key, dict.fromkeys(STATUSES, 0))[cell["status"]] += 1
    return [CellCount(env, agent, **n) for (env, agent), n in sorted(counts.items())]
