"""Where a run lives and what it runs on, shared by our learner (train.py) and the peer
(peers/recurrent_ppo.py)."""

from __future__ import annotations

import datetime
from pathlib import Path

import torch
from omegaconf import DictConfig

__all__ = ["default_run_dir", "resolve_device"]


def resolve_device(name: str) -> torch.device:
    """auto → cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device=cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def default_run_dir(cfg: DictConfig) -> Path:
    """<log_dir>/<env>/<algo>-<core>/seed<seed>-<time>, Hydra's run dir when Hydra runs us."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    # Microseconds: runs started in the same second (a shell loop with &) must not share a dir.
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path(cfg.log_dir) / cfg.env.name / f"{cfg.algo.name}-{cfg.core.name}" / f"seed{cfg.seed}-{stamp}"
