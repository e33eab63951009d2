"""Train an actor-critic agent with a recurrent core: ``python train.py env=... algo=... core=...``.

Config → envs, agent, rule, learner, logger → loop (collect, update, log, checkpoint) → summary.
``train(cfg)`` is the whole job as a function, so tests and scripts can call it without Hydra.
"""

from __future__ import annotations

import os

# Idle OpenMP threads sleep instead of spinning: with spinning threads, a learner of small tensors
# on a busy 2-core machine ran 6x slower. Set before torch is imported.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import math
import signal
import time
from pathlib import Path
from typing import Any

import hydra
import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.checkpoint import load_checkpoint, save_checkpoint
from agents.learner import Learner, LearnerConfig
from agents.policy import ActorCritic
from agents.registry import make_rule
from envs import make_vector_env


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
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return Path(cfg.log_dir) / cfg.env.name / f"{cfg.algo.name}-{cfg.core.name}" / f"seed{cfg.seed}-{stamp}"


def build(cfg: DictConfig, device: torch.device) -> Learner:
    """Envs, agent, rule and learner from the config."""
    envs = make_vector_env(cfg.env, num_envs=cfg.num_envs, seed=cfg.seed)
    agent = ActorCritic.from_config(
        cfg.core, cfg.policy, envs.single_observation_space, envs.single_action_space
    ).to(device)
    rule = make_rule(cfg.algo.name, agent.core)
    learner_cfg = LearnerConfig(**{k: v for k, v in cfg.algo.items() if k != "name"})
    return Learner(agent, rule, envs, learner_cfg, device)


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
    """Run one training job; returns its summary (final mean return, steps, paths)."""
    stop = _StopFlag()  # first, so that a signal during start-up also ends the run cleanly
    try:
        return _train(cfg, run_dir, stop)
    finally:
        stop.restore()


def _train(cfg: DictConfig, run_dir: Path | None, stop: _StopFlag) -> dict[str, Any]:
    if cfg.algo.name == "rppo":  # the peer, sb3-contrib's RecurrentPPO: its own loop, same outputs
        from agents.recurrent_ppo import train_recurrent_ppo

        return train_recurrent_ppo(cfg, run_dir, stop)
    OmegaConf.resolve(cfg)
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)
    device = resolve_device(cfg.device)
    learner = build(cfg, device)
    env_name = getattr(learner.envs, "env_name", cfg.env.name)
    ckpt_path = run_dir / "checkpoint.pt"
    if cfg.resume:
        learner.load_state_dict(load_checkpoint(cfg.resume, map_location=device))
        learner.reset_envs(seed=cfg.seed + learner.updates)  # fresh episodes: rows reset on step one

    writer = SummaryWriter(str(run_dir))
    writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```")
    writer.add_text(
        "stem_training",
        "BPTT within the rollout (the encoder's gradient flows back "
        "through the core over the chunk); the core's gradient comes from the rule",
    )
    steps_per_update = cfg.num_envs * cfg.algo.rollout_len
    bar = tqdm(
        total=cfg.total_steps,
        initial=learner.global_step,
        disable=not cfg.progress,
        unit="step",
        dynamic_ncols=True,
    )
    start_time, start_step = time.perf_counter(), learner.global_step
    metrics: dict[str, float] = {}
    try:
        while learner.global_step < cfg.total_steps and stop.signal is None:
            # collect, then update (GAE, loss, backward with the rule's carried gradient, step)
            rollout = learner.collect()
            metrics = learner.update(rollout)
            # log
            fps = (learner.global_step - start_step) / (time.perf_counter() - start_time)
            step = learner.global_step
            for key, val in metrics.items():
                writer.add_scalar(f"train/{key}", val, step)
            writer.add_scalar("time/fps", fps, step)
            if learner.episode_returns:
                writer.add_scalar("rollout/ep_rew_mean", np.mean(learner.episode_returns), step)
                writer.add_scalar("rollout/ep_len_mean", np.mean(learner.episode_lengths), step)
            bar.update(steps_per_update)
            bar.set_postfix(sps=f"{fps:.0f}", ret=f"{_mean(learner.episode_returns):.3f}")
            if learner.updates % cfg.checkpoint_every == 0:
                save_checkpoint(_checkpoint(learner, cfg), ckpt_path)
    finally:
        bar.close()
        save_checkpoint(_checkpoint(learner, cfg), ckpt_path)
        final = _mean(learner.episode_returns)
        writer.add_hparams(
            {
                "env": env_name,
                "algo": cfg.algo.name,
                "core": cfg.core.name,
                "seed": cfg.seed,
                "rollout_len": cfg.algo.rollout_len,
                "update": cfg.algo["update"],
                "lr": cfg.algo.lr,
                "hidden_size": cfg.core.hidden_size,
                "num_envs": cfg.num_envs,
            },
            {"hparam/ep_rew_mean": final if math.isfinite(final) else 0.0},
            run_name=".",
        )
        writer.close()
        learner.envs.close()
    interrupted = "" if stop.signal is None else f" (stopped by {signal.Signals(stop.signal).name})"
    summary = {
        "ep_rew_mean": final,
        "global_step": learner.global_step,
        "updates": learner.updates,
        "skipped_updates": learner.skipped_updates,
        "run_dir": str(run_dir),
        "checkpoint": str(ckpt_path),
    }
    print(
        f"{env_name} {cfg.algo.name}-{cfg.core.name} seed {cfg.seed}: {learner.global_step} steps, "
        f"ep_rew_mean {final:.3f}{interrupted}; run in {run_dir}"
    )
    return summary


def _mean(xs: Any) -> float:
    return float(np.mean(xs)) if len(xs) else float("nan")


def _checkpoint(learner: Learner, cfg: DictConfig) -> dict[str, Any]:
    return {**learner.state_dict(), "config": OmegaConf.to_yaml(cfg)}


@hydra.main(config_path="configs", config_name="config", version_base="1.3")
def main(cfg: DictConfig) -> None:
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    train(cfg)


if __name__ == "__main__":
    main()
