"""Train an actor-critic agent with a recurrent core: ``python train.py env=... algo=... core=...``.

Config → envs, agent, rule, learner, logger → loop (collect, update, log, checkpoint) → summary.
``train(cfg)`` is the whole job as a function, so tests and scripts can call it without Hydra.
``torchrun --nproc_per_node=K train.py ...`` runs one job as K data-parallel learners
(agents/distributed.py): rank 0 alone writes the run directory.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: with spinning threads, a learner of small tensors
# on a busy 2-core machine ran 6x slower. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import math
import signal
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.checkpoint import checkpoint_name, load_checkpoint, save_checkpoint
from agents.distributed import DataParallel
from agents.learner import Learner, LearnerConfig
from agents.policy import ActorCritic
from agents.registry import make_rule
from agents.runs import default_run_dir, resolve_device
from agents.stream import StreamLearner
from envs import make_vector_env


def build(
    cfg: DictConfig, device: torch.device, ranks: DataParallel | None = None
) -> Learner | StreamLearner:
    """Envs, agent, rule and learner from the config; with ``ranks``, this rank's share of the
    envs and a learner whose update is global across ranks. algo=stream: the streaming learner."""
    ranks = DataParallel(device=device) if ranks is None else ranks
    envs = make_vector_env(
        cfg.env, num_envs=ranks.local_envs(cfg.num_envs), seed=ranks.env_seed(cfg.seed, cfg.num_envs)
    )
    if cfg.algo.name == "stream":
        return StreamLearner.from_config(cfg, envs, device)
    agent = ActorCritic.from_config(
        cfg.core, cfg.policy, envs.single_observation_space, envs.single_action_space
    ).to(device)
    rule = make_rule(cfg.algo.name, agent.core)
    learner_cfg = LearnerConfig(**{k: v for k, v in cfg.algo.items() if k != "name"})
    # this rank's share of the budget: every rank steps its envs in lockstep
    local_steps = max(1, cfg.total_steps * envs.num_envs // cfg.num_envs)
    learner = Learner(agent, rule, envs, learner_cfg, device, total_steps=local_steps)
    ranks.attach(learner)
    return learner


class _StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks between updates."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def restore(self) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


def train(cfg: DictConfig, run_dir: Path | None = None) -> dict[str, Any]:
    """Run one training job; returns its summary (final mean return, steps, steps/s, paths).

    Under torchrun every rank calls this and gets the same summary; rank 0 alone writes."""
    stop = _StopFlag()  # first, so that a signal during start-up also ends the run cleanly
    try:
        if cfg.algo.name in ("rppo", "stream") and DataParallel.launched():
            raise ValueError(f"algo={cfg.algo.name} runs in one process: start it without torchrun")
        return _train(cfg, run_dir, stop)
    finally:
        stop.restore()


def _train(cfg: DictConfig, run_dir: Path | None, stop: _StopFlag) -> dict[str, Any]:
    if cfg.algo.name == "rppo":  # the peer, sb3-contrib's RecurrentPPO: its own loop, same outputs
        from agents.recurrent_ppo import train_recurrent_ppo

        return train_recurrent_ppo(cfg, run_dir, stop)
    OmegaConf.resolve(cfg)
    ranks = DataParallel.from_env(resolve_device(cfg.device))  # one process: rank 0 of 1
    main = ranks.is_main
    # rank 0's run dir: under Hydra each rank has its own time stamp
    run_dir = Path(ranks.broadcast(str(run_dir if run_dir is not None else default_run_dir(cfg))))
    if main:
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    torch.manual_seed(cfg.seed)  # the same initial weights on every rank
    np.random.seed(cfg.seed)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    device = ranks.device
    if cfg.algo.name != "stream":
        ranks.check_minibatches(cfg.num_envs, cfg.algo["update"], cfg.algo.num_minibatches)
    learner = build(cfg, device, ranks)
    ranks.seed_rank(cfg.seed)  # then each rank samples its own actions
    env_name = getattr(learner.envs, "env_name", cfg.env.name)
    ckpt_path = run_dir / checkpoint_name(cfg.algo.name)
    if cfg.resume:
        # several ranks: rank 0 reads it onto the CPU and sends every rank its part
        where = device if ranks.world_size == 1 else "cpu"
        ranks.load(learner, load_checkpoint(cfg.resume, map_location=where) if main else None)
        # fresh episodes: rows reset on step one
        learner.reset_envs(seed=ranks.env_seed(cfg.seed + learner.updates, cfg.num_envs))

    writer = SummaryWriter(str(run_dir)) if main else None
    if writer is not None:
        writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```")
        writer.add_text(
            "stem_training",
            "BPTT within the rollout (the encoder's gradient flows back "
            "through the core over the chunk); the core's gradient comes from the rule",
        )
    steps_per_update = cfg.num_envs * cfg.algo.rollout_len
    bar = tqdm(
        total=cfg.total_steps,
        initial=ranks.global_step(learner),
        disable=not (cfg.progress and main),
        unit="step",
        dynamic_ncols=True,
    )
    start_time, start_step = time.perf_counter(), ranks.global_step(learner)
    stop_signal = ranks.agree_signal(stop.signal)  # agreed, so that all ranks stop after one update
    step, fps, finished = start_step, 0.0, False
    try:
        while step < cfg.total_steps and stop_signal is None:
            # collect, then update (GAE, loss, backward with the rule's carried gradient, step)
            rollout = learner.collect()
            metrics = learner.update(rollout)
            # log: over all ranks (the run's steps and episodes, the ranks' mean metrics)
            log = ranks.gather_log(learner, metrics, stop.signal)
            stop_signal, step = log.stop_signal, ranks.global_step(learner)
            fps = (step - start_step) / (time.perf_counter() - start_time)
            if writer is not None:
                for key, val in log.metrics.items():
                    writer.add_scalar(f"train/{key}", val, step)
                writer.add_scalar("time/fps", fps, step)
                if log.episodes:
                    writer.add_scalar("rollout/ep_rew_mean", log.ep_rew_mean, step)
                    writer.add_scalar("rollout/ep_len_mean", log.ep_len_mean, step)
            bar.update(steps_per_update)
            bar.set_postfix(sps=f"{fps:.0f}", ret=f"{log.ep_rew_mean:.3f}")
            if learner.updates % cfg.checkpoint_every == 0:
                _save(ranks.checkpoint(learner), cfg, ckpt_path)
        finished = True
    finally:
        bar.close()
        # After an error on one of several ranks, no collectives (the others may be inside one):
        # the periodic checkpoint stays, and torchrun ends the other ranks.
        collective_ok = finished or ranks.world_size == 1
        final = float("nan")
        if collective_ok:
            _save(ranks.checkpoint(learner), cfg, ckpt_path)
            final = ranks.gather_log(learner, {}, None).ep_rew_mean
        if writer is not None:
            if collective_ok:
                writer.add_hparams(
                    {
                        "env": env_name,
                        "algo": cfg.algo.name,
                        "core": cfg.core.name,
                        "seed": cfg.seed,
                        "rollout_len": cfg.algo.rollout_len,
                        "update": cfg.algo.get("update", cfg.algo.name),
                        "lr": cfg.algo.lr,
                        "hidden_size": cfg.core.hidden_size,
                        "num_envs": cfg.num_envs,
                    },
                    {"hparam/ep_rew_mean": final if math.isfinite(final) else 0.0},
                    run_name=".",
                )
            writer.close()
        learner.envs.close()
    ranks.close()
    interrupted = "" if stop_signal is None else f" (stopped by {signal.Signals(stop_signal).name})"
    summary = {
        "ep_rew_mean": final,
        "global_step": step,
        "fps": fps,
        "updates": learner.updates,
        "skipped_updates": learner.skipped_updates,
        "processes": ranks.world_size,
        "run_dir": str(run_dir),
        "checkpoint": str(ckpt_path),
    }
    if main:
        over = "" if ranks.world_size == 1 else f" over {ranks.world_size} processes"
        print(
            f"{env_name} {cfg.algo.name}-{cfg.core.name} seed {cfg.seed}: {step} steps, "
            f"ep_rew_mean {final:.3f}, {fps:.0f} steps/s{over}{interrupted}; run in {run_dir}"
        )
    return summary


def _save(state: dict[str, Any] | None, cfg: DictConfig, path: Path) -> None:
    """Write a checkpoint; ``state`` is None on every rank but rank 0, which alone writes."""
    if state is not None:
        save_checkpoint({**state, "config": OmegaConf.to_yaml(cfg)}, path)


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    train(cfg)


if __name__ == "__main__":
    if int(os.environ.get("RANK", "0")) > 0:
        # torchrun's other ranks: no Hydra run dir or log file of their own (rank 0 writes the run)
        sys.argv += ["hydra.run.dir=.", "hydra.output_subdir=null", "hydra/job_logging=disabled"]
    main()
