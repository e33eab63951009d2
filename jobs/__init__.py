"""One training job as a function: ``train(cfg)`` runs our learner or, for ``algo=rppo``, the peer,
and returns the run's summary. train.py is its Hydra entry; the benchmarks, the suite and the
tests call it directly.

It stands above both rooms (jobs → {agents, peers} → envs), so that neither imports the other:
our learner's job is ``agents.training.train_learner``, the peer's
``peers.recurrent_ppo.train_recurrent_ppo``.
"""

from __future__ import annotations

import copy
import statistics
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig

from agents.distributed import DataParallel
from agents.runs import StopFlag, check_tuned, default_run_dir
from agents.training import train_learner

__all__ = ["train", "train_trial", "trial_objective"]


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


def train_trial(cfg: DictConfig) -> list[dict[str, Any]]:
    """One sweep trial: the job at ``cfg.seed``, or, with ``trial_seeds`` set, one job per listed
    seed, one after another, each in ``<run dir>/seed<k>``. Returns their summaries; stops after a
    job that a signal stopped.

    A search scored on one seed rewards a lucky seed: the RepeatPreviousEasy preset's best trial
    ended at 0.722 on its search's seed and at 0.213 on seeds 1-3 (configs/tuned/)."""
    seeds = cfg.get("trial_seeds")
    if seeds is None:
        return [train(cfg)]
    if not isinstance(seeds, ListConfig | list) or not seeds or len(set(seeds)) != len(seeds):
        raise ValueError(f"trial_seeds must be a list of distinct seeds, e.g. [0,1,2]; got {seeds!r}")
    if cfg.resume:
        raise ValueError("resume continues one run and trial_seeds starts several: drop one of them")
    parent = default_run_dir(cfg)
    summaries = []
    for seed in seeds:
        one = copy.deepcopy(cfg)
        one.seed, one.trial_seeds = int(seed), None
        summaries.append(train(one, parent / f"seed{int(seed)}"))
        if summaries[-1]["stop_signal"] is not None:
            break
    print(
        f"trial: seeds {[int(s) for s in seeds[: len(summaries)]]}, mean ep_rew_mean "
        f"{trial_objective(summaries):.4f}",
        flush=True,
    )
    return summaries


def trial_objective(summaries: list[dict[str, Any]]) -> float:
    """What a sweeper maximises: the mean of the jobs' final returns (their ``ep_rew_mean``)."""
    return statistics.fmean(float(s["ep_rew_mean"]) for s in summaries)
