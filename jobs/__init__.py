"""One training job as a function: ``train(cfg)`` runs our learner or, for ``algo=rppo``, the peer,
and returns the run's summary. train.py is its Hydra entry; the benchmarks, the suite and the
tests call it directly.

It stands above both rooms (jobs → {agents, peers} → envs), so that neither imports the other:
our learner's job is ``agents.training.train_learner``, the peer's
``peers.recurrent_ppo.train_recurrent_ppo``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from agents.distributed import DataParallel
from agents.runs import StopFlag, check_tuned
from agents.training import train_learner

__all__ = ["train"]


def train(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Run one training job; returns its summary (final mean return, steps, steps/s, paths).

    Under torchrun every rank calls this and gets the same summary; rank 0 alone writes."""
    stop = StopFlag()  # first, so that a signal during start-up also ends the run cleanly
    try:
        check_tuned(cfg)
        if cfg.algo.name in ("rppo", "stream") and DataParallel.launched():
            raise ValueError(f"algo={cfg.algo.name} runs in one process: start it without torchrun")
        if cfg.algo.name == "rppo":  # the peer, sb3-contrib's RecurrentPPO: its own loop, same outputs
            from peers.recurrent_ppo import train_recurrent_ppo  # needs the sb3 extra

            return train_recurrent_ppo(cfg, run_dir, stop)
        return train_learner(cfg, run_dir, stop)
    finally:
        stop.restore()
