"""Atomic checkpoints, loaded with ``weights_only=True``."""

from __future__ import annotations

import os
import tempfile
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, BinaryIO

import torch

from agents.rules import RuleState

__all__ = [
    "checkpoint_name",
    "load_checkpoint",
    "load_rule_state",
    "restore_rng_state",
    "rng_state",
    "rule_state_dict",
    "save_checkpoint",
    "write_atomically",
]


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


def rng_state(device: torch.device) -> dict[str, torch.Tensor]:
    """torch's RNG state, and this learner's GPU's (under torchrun, not every rank's)."""
    rng = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(device)
    return rng


def restore_rng_state(saved: dict[str, torch.Tensor], device: torch.device) -> None:
    """Restore :func:`rng_state`; RNG states must be CPU byte tensors, wherever map_location put them."""
    torch.set_rng_state(saved["torch"].cpu())
    if "cuda" in saved and device.type == "cuda":
        torch.cuda.set_rng_state(saved["cuda"].cpu(), device)


def rule_state_dict(rstate: RuleState) -> dict[str, Any]:
    """A rule state (core state and traces) as a checkpoint holds it."""
    return {"state": rstate.state, "traces": dict(rstate.traces)}


def load_rule_state(saved: dict[str, Any], device: torch.device) -> RuleState:
    """The rule state :func:`rule_state_dict` saved, on ``device``."""
    return RuleState(saved["state"].to(device), {k: v.to(device) for k, v in saved["traces"].items()})
