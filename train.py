"""Train an actor-critic agent with a recurrent core: ``python train.py env=... algo=... core=...``.

The Hydra entry, nothing more: it composes the config and calls ``jobs.train_trial(cfg)``, the
whole job as a function (one job per seed of ``trial_seeds`` when a search sets it): our learner
in agents/training.py, or the peer in peers/recurrent_ppo.py for ``algo=rppo``.
``torchrun --nproc_per_node=K train.py ...`` runs one job as K data-parallel learners
(agents/distributed.py): rank 0 alone writes the run directory. Nothing imports this file.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: with spinning threads, a learner of small tensors
# on a busy 2-core machine ran 6x slower. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from jobs import train_trial, trial_objective


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """One job; returns its final mean return (the summary's ep_rew_mean), the objective that a
    sweeper such as Hydra's Optuna sweeper (``-m hydra/sweeper=optuna``) maximises. With
    ``trial_seeds=[0,1,2]``: one job per seed, and the mean of their final returns.

    A run stopped by SIGINT/SIGTERM is saved and ends cleanly; under ``-m`` it also ends the sweep,
    with the shell's status for that signal (128 + its number): a sweeper would otherwise score the
    cut-short run as a finished one and go on to the next."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    summaries = train_trial(cfg)
    stopped = summaries[-1]["stop_signal"]
    if stopped is not None and HydraConfig.get().mode == RunMode.MULTIRUN:
        sys.exit(128 + stopped)
    return trial_objective(summaries)


if __name__ == "__main__":
    if int(os.environ.get("RANK", "0")) > 0:
        # torchrun's other ranks: no Hydra run dir or log file of their own (rank 0 writes the run)
        sys.argv += ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    main()
