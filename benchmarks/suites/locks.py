"""A cell's lock file: two overlapping slices of a suite never train one cell into one run dir."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

__all__ = ["lock_holder", "lock_path", "lock_pid", "take_lock"]

# An empty lock file is one being taken (created, not yet written); one empty for longer than this
# was left by a process that died in between, and is stale.
EMPTY_LOCK_STALE_S = 60.0


def lock_path(run_dir: Path) -> Path:
    """A cell's lock file: beside its run dir (``.seed<k>.lock``), so that clearing the run dir
    keeps it."""
    return run_dir.parent / f".{run_dir.name}.lock"


def lock_holder(path: Path) -> str | None:
    """Who holds the lock file, without taking it: None when there is none or its process (on this
    host) is gone; a lock from another host counts as held."""
    try:
        host, pid = _read(path)
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    if not pid:  # being taken this instant, or left empty by a process that died then
        return f"a process taking {path} now" if age < EMPTY_LOCK_STALE_S else None
    if host != socket.gethostname() or _alive(int(pid)):
        return f"process {pid} on {host}"
    return None


def lock_pid(path: Path) -> int | None:
    """The pid of the live process of this host that holds the lock file; None if there is none."""
    try:
        host, pid = _read(path)
    except FileNotFoundError:
        return None
    if host != socket.gethostname() or not pid.isdigit() or not _alive(int(pid)):
        return None
    return int(pid)


def _read(path: Path) -> tuple[str, str]:
    """A lock file's ``host pid`` (pid "" while it is being taken)."""
    host, _, pid = path.read_text().partition(" ")
    return host, pid.strip()


def take_lock(path: Path) -> str | None:
    """Take the cell's lock file (``host pid``, created atomically); None when taken, else who
    holds it. A lock left by a dead process of this host is stale and taken over; one from another
    host (SLURM) cannot be checked and counts as held: delete it by hand if that job is gone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    me = f"{socket.gethostname()} {os.getpid()}"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            holder = lock_holder(path)
            if holder is not None:
                return holder
            path.unlink(missing_ok=True)  # stale: its process is gone (or it just let go)
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
