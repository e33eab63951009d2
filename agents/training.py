"""Our learner's whole training job as a function, and ``build``, which makes its parts.

Config → envs, agent, rule, learner, logger → loop (collect, update, log, checkpoint) → summary.
``train_learner(cfg, run_dir, stop)`` is the job; ``jobs.train(cfg)`` (what ``python train.py``
runs) calls it for every algo but the peer's. Under torchrun every rank calls it
(agents/distributed.py) and rank 0 alone writes the run directory.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from agents.checkpoint import checkpoint_name, load_checkpoint, save_checkpoint
from agents.distributed import DataParallel
from agents.learner import Learner, LearnerConfig
from agents.policy import ActorCritic
from agents.registry import make_rule
from agents.runs import (
    StopSignal,
    default_run_dir,
    nothing_to_train,
    open_writer,
    progress_bar,
    resolve_device,
    run_summary,
    seed_and_threads,
    write_config,
    write_hparams,
)
from agents.stream import StreamLearner
from envs import make_vector_env

__all__ = ["build", "train_learner"]


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
        cfg.core,
        cfg.policy,
        envs.single_observation_space,
        envs.single_action_space,
        log_std_min=cfg.algo.get("log_std_min"),
    ).to(device)
    rule = make_rule(cfg.algo.name, agent.core)
    learner_cfg = LearnerConfig(**{k: v for k, v in cfg.algo.items() if k != "name"})
    # this rank's share of the budget: every rank steps its envs in lockstep
    local_steps = max(1, cfg.total_steps * envs.num_envs // cfg.num_envs)
    for key in ("lr_decay_after", "ent_decay_after"):  # counted in all ranks' env steps, as the budget
        if getattr(learner_cfg, key) is not None:
            share = max(1, getattr(learner_cfg, key) * envs.num_envs // cfg.num_envs)
            learner_cfg = dataclasses.replace(learner_cfg, **{key: share})
    learner = Learner(agent, rule, envs, learner_cfg, device, total_steps=local_steps)
    ranks.attach(learner)
    return learner


def train_learner(cfg: DictConfig, run_dir: Path | None, stop: StopSignal) -> dict[str, Any]:
    """Run one training job of our learner; returns its summary (final mean return, steps,
    steps/s, paths). ``stop.signal`` set (SIGINT/SIGTERM) ends it cleanly after an update."""
    OmegaConf.resolve(cfg)
    ranks = DataParallel.from_env(resolve_device(cfg.device))  # one process: rank 0 of 1
    main, device = ranks.is_main, ranks.device
    payload = None
    if cfg.resume:
        # several ranks: rank 0 reads it onto the CPU and sends every rank its part
        where = device if ranks.world_size == 1 else "cpu"
        payload = load_checkpoint(cfg.resume, map_location=where) if main else None
        counters = ranks.broadcast(payload["counters"] if main else None)  # the run's, not a rank's
        spent = nothing_to_train(
            cfg, counters["global_step"], counters["updates"], counters["skipped_updates"],
            run_dir, ranks.world_size, report=main,
        )  # fmt: skip
        if spent is not None:
            ranks.close()
            return spent
    # rank 0's run dir: under Hydra each rank has its own time stamp
    run_dir = Path(ranks.broadcast(str(run_dir if run_dir is not None else default_run_dir(cfg))))
    if main:
        write_config(run_dir, cfg)
    seed_and_threads(cfg)  # the same initial weights on every rank
    if cfg.algo.name != "stream":
        ranks.check_minibatches(cfg.num_envs, cfg.algo["update"], cfg.algo.num_minibatches)
    learner = build(cfg, device, ranks)
    ranks.seed_rank(cfg.seed)  # then each rank samples its own actions
    env_name = getattr(learner.envs, "env_name", cfg.env.name)
    ckpt_path = run_dir / checkpoint_name(cfg.algo.name)
    if cfg.resume:
        ranks.load(learner, payload)
        # fresh episodes: rows reset on step one
        learner.reset_envs(seed=ranks.env_seed(cfg.seed + learner.updates, cfg.num_envs))

    writer = open_writer(run_dir, cfg) if main else None
    if writer is not None:
        writer.add_text(
            "stem_training",
            "BPTT within the rollout (the encoder's gradient flows back "
            "through the core over the chunk); the core's gradient comes from the rule",
        )
    steps_per_update = cfg.num_envs * cfg.algo.rollout_len
    bar = progress_bar(cfg, initial=ranks.global_step(learner), enabled=main)
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
            # checkpoint
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
                write_hparams(
                    writer,
                    cfg,
                    env_name,
                    cfg.algo.rollout_len,
                    cfg.algo.get("update", cfg.algo.name),
                    cfg.algo.lr,
                    final,
                )
            writer.close()
        learner.envs.close()
    ranks.close()
    return run_summary(
        cfg,
        env_name,
        final=final,
        step=step,
        fps=fps,
        updates=learner.updates,
        skipped_updates=learner.skipped_updates,
        run_dir=run_dir,
        checkpoint=ckpt_path,
        processes=ranks.world_size,
        stop_signal=stop_signal,
        report=main,
    )


def _save(state: dict[str, Any] | None, cfg: DictConfig, path: Path) -> None:
    """Write a checkpoint; ``state`` is None on every rank but rank 0, which alone writes."""
    if state is not None:
        save_checkpoint({**state, "config": OmegaConf.to_yaml(cfg)}, path)
