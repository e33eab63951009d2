"""A run kept without its run directory: what the report reads of it, in one small file.

A suite's cells train in run dirs of many MB (events, checkpoints) on the machine that ran them. A
suite longer than one machine's life (the popgym suite is ~14 h of 2 cores) only finishes if its
finished cells outlive that machine, so ``benchmarks.suite`` archives each finished cell beside
its report (``benchmarks/results/<suite>/cells/<task>/<agent>/seed<k>.json.gz``), to be committed.
An archive holds :func:`report.runs.read_run_files`' data for the compared tag (every logged
point: the report's statistics from an archive equal those from the run dir), plus ``extra`` (the
suite's done marker). Other tags and the checkpoint stay behind, so a report of another tag, or a
new evaluation, needs the run dir.

The file is gzip'd JSON with no timestamp in its header: archiving the same run twice writes the
same bytes, so a re-archived cell makes no diff.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from report.records import DEFAULT_TAG, Run
from report.runs import read_run_files, run_from_files

__all__ = ["ARCHIVE_FORMAT", "archive_run", "load_archive", "load_archived_run"]

ARCHIVE_FORMAT = 1


def archive_run(
    run_dir: str | Path, path: str | Path, extra: Mapping[str, Any] | None = None, tag: str = DEFAULT_TAG
) -> Path:
    """Write the archive of ``run_dir`` to ``path`` (atomically), with ``extra`` beside its data.

    Raises:
        ValueError: the run never logged ``tag`` (nothing the report could read).
    """
    files = read_run_files(run_dir, tag)
    if files is None:
        raise ValueError(f"{run_dir} never logged {tag!r}: nothing to archive")
    data = {"format": ARCHIVE_FORMAT, **files, "extra": dict(extra or {})}
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_bytes(gzip.compress(text.encode(), compresslevel=9, mtime=0))
    tmp.replace(path)  # a reader never sees half an archive
    return path


def load_archive(path: str | Path) -> dict[str, Any]:
    """An archive's data; raises ValueError for a file that is not one (or of another format)."""
    try:
        data = json.loads(gzip.decompress(Path(path).read_bytes()))
    except (OSError, EOFError, ValueError) as exc:
        raise ValueError(f"{path} is not a run archive (gzip'd JSON): {exc}") from exc
    if not isinstance(data, Mapping) or data.get("format") != ARCHIVE_FORMAT:
        raise ValueError(f"{path}: not a run archive of format {ARCHIVE_FORMAT}")
    return data


def load_archived_run(path: str | Path, tag: str = DEFAULT_TAG, agent_keys: Sequence[str] = ()) -> Run:
    """The :class:`Run` an archive holds, labelled as :func:`report.runs.load_run` labels a run dir.

    Raises:
        ValueError: not an archive, or one of another tag (only the run dir has the others).
    """
    data = load_archive(path)
    if data["tag"] != tag:
        raise ValueError(
            f"{path} archives the tag {data['tag']!r}, not {tag!r}: compare {tag!r} from the run dirs"
        )
    return run_from_files(Path(path), data, agent_keys)
