"""Atomic checkpoints, loaded with ``weights_only=True``."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

__all__ = ["checkpoint_name", "load_checkpoint", "save_checkpoint", "write_atomically"]


def checkpoint_name(algo: str) -> str:
    """The file a run of ``algo`` checkpoints to in its run dir (``resume=`` takes it): our
    learner's ``checkpoint.pt``, or for the peer (algo=rppo) SB3's own zip."""
    return "checkpoint.zip" if algo == "rppo" else "checkpoint.pt"


def save_checkpoint(payload: dict[str, Any], path: str | Path) -> Path:
    """Write ``payload`` (tensors, dicts, lists, numbers, strings) to ``path`` atomically."""
    return write_atomically(path, lambda f: torch.save(payload, f))


def write_atomically(path: str | Path, write: Callable[[BinaryIO], None]) -> Path:
    """Call ``write`` on a temporary file in ``path``'s folder, flush it to disk, then rename it
    over ``path``: a reader sees the old file or the new one, never half of one."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint written by ``save_checkpoint``; refuses arbitrary pickled objects."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    if _is_sb3_zip(path):
        raise ValueError(
            f"{str(path)!r} is a Stable-Baselines3 zip (the peer's, algo=rppo), not our learner's "
            "checkpoint.pt: evaluate it with python -m peers.evaluate, resume it with train.py "
            "algo=rppo resume=..., or load it with sb3_contrib.RecurrentPPO.load"
        )
    return torch.load(path, map_location=map_location, weights_only=True)


def _is_sb3_zip(path: Path) -> bool:
    """SB3's zips hold a ``data`` file at their root; torch.save's zips nest every entry in a folder."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return "data" in archive.namelist()
