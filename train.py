"""Train an actor-critic agent with a recurrent core: ``python train.py env=... algo=... core=...``.

The Hydra entry, nothing more: it composes the config and calls ``jobs.train(cfg)``, the whole job
as a function (our learner in agents/training.py, or the peer in peers/recurrent_ppo.py for
``algo=rppo``). ``torchrun --nproc_per_node=K train.py ...`` runs one job as K data-parallel
learners (agents/distributed.py): rank 0 alone writes the run directory. Nothing imports this file.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: with spinning threads, a learner of small tensors
# on a busy 2-core machine ran 6x slower. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import sys

import hydra
from omegaconf import DictConfig

from jobs import train


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> float:
    """One job; returns its final mean return (the summary's ep_rew_mean), the objective that a
    sweeper such as Hydra's Optuna sweeper (``-m hydra/sweeper=optuna``) maximises."""
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    return float(train(cfg)["ep_rew_mean"])


if __name__ == "__main__":
    if int(os.environ.get("RANK", "0")) > 0:
        # torchrun's other ranks: no Hydra run dir or log file of their own (rank 0 writes the run)
        sys.argv += ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    main()
