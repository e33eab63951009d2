"""The peer: sb3-contrib's RecurrentPPO behind ``python train.py algo=rppo``, so its curves overlay ours.

Same env factory (through :class:`peers.sb3_vec_env.SB3VecEnv`), same run-dir layout
(``<log_dir>/<env>/rppo-lstm/seed<seed>-<time>/`` with ``config.yaml``), same TensorBoard tags as
our learner (agents/training.py), and the same progress bar, seeding, clean stop on SIGINT/SIGTERM
and summary, from the scaffolding both share (agents/runs.py). The training itself is
sb3-contrib's ``RecurrentPPO.learn``, untouched; a callback logs and checkpoints.

Tags (logged after every update, at the env step count after it, as our learner does):

* ``rollout/ep_rew_mean``, ``rollout/ep_len_mean``: mean raw return and length of the last 100
  episodes, as the factory's ``RecordEpisodeStatistics`` reports them (before reward clipping).
* ``time/fps``: env steps per second since the start of training.
* ``train/policy_loss``, ``train/entropy`` (mean policy entropy), ``train/value_loss`` (½ mean
  squared error, our learner's definition; SB3's own number is twice that), ``train/loss``,
  ``train/approx_kl``, ``train/clip_fraction``, ``train/explained_variance``,
  ``train/learning_rate``, ``train/clip_range``: SB3's values for the update, renamed where SB3's
  name differs; ``train/grad_norm``: mean gradient norm before clipping over the minibatches.

Checkpoint: SB3's own zip, ``checkpoint.zip`` (``RecurrentPPO.load`` reads it), written to a
temporary file and renamed (atomic), every ``checkpoint_every`` updates, at the end and on a signal.
``resume=<run>/checkpoint.zip`` continues one: the model is built from the new config, then its
weights, optimizer state and step count are loaded.

The core: ``configs/algo/rppo.yaml`` selects ``core=lstm`` (the run dir reads ``rppo-lstm``) and
sets ``core.hidden_size`` to sb3-contrib's 256; ``algo.lstm_hidden_size`` follows
``core.hidden_size``. The policy sees the observation only: ``policy.*`` keys (previous action and
reward as inputs, encoders) belong to our agents and do not apply.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

from agents.checkpoint import checkpoint_name, write_atomically
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
from envs import make_vector_env
from peers.recurrent_ppo_config import LinearSchedule, RecurrentPPOConfig, check_zoo_env
from peers.sb3_policy import EXTRACTORS, choose_policy, small_images_as_vectors
from peers.sb3_vec_env import SB3_MISSING, SB3VecEnv  # raises SB3_MISSING without the sb3 extra

try:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.logger import Logger
    from stable_baselines3.common.vec_env import VecNormalize
except ImportError as exc:
    raise ImportError(SB3_MISSING) from exc

__all__ = [
    "CHECKPOINT_NAME",
    "NORMALIZE_NAME",
    "LinearSchedule",
    "RecurrentPPOConfig",
    "check_core",
    "checkpoint_steps",
    "episode_mean",
    "make_model",
    "resume",
    "save_model",
    "train_recurrent_ppo",
]

CHECKPOINT_NAME = checkpoint_name("rppo")
NORMALIZE_NAME = "vecnormalize.pkl"  # algo.normalize: VecNormalize's statistics, beside the checkpoint
# SB3's train/* names that differ from our learner's, and the factor that makes them the same number.
_RENAMED: dict[str, tuple[str, float]] = {
    "train/policy_gradient_loss": ("train/policy_loss", 1.0),
    "train/entropy_loss": ("train/entropy", -1.0),  # SB3 logs -entropy
    "train/value_loss": ("train/value_loss", 0.5),  # SB3: mean squared error; ours: half of it
}


def make_model(cfg: DictConfig, device: torch.device, rcfg: RecurrentPPOConfig | None = None) -> RecurrentPPO:
    """RecurrentPPO on the config's envs (``cfg.env``, ``algo.n_envs`` or ``num_envs``, ``seed``), seeded with
    ``cfg.seed``; ``rcfg`` defaults to ``RecurrentPPOConfig.from_config(cfg.algo)``."""
    check_core(cfg)
    rcfg = RecurrentPPOConfig.from_config(cfg.algo) if rcfg is None else rcfg
    n_envs = rcfg.n_envs or cfg.num_envs
    venv = SB3VecEnv(small_images_as_vectors(make_vector_env(cfg.env, num_envs=n_envs, seed=cfg.seed)))
    if rcfg.normalize:  # as rl-zoo's `normalize: true`: observations and rewards, discounted with gamma
        venv = VecNormalize(venv, norm_obs=True, norm_reward=True, gamma=rcfg.gamma)
    policy = choose_policy(venv.observation_space, rcfg.policy)
    kwargs = rcfg.model_kwargs()
    if policy in EXTRACTORS:
        kwargs["policy_kwargs"]["features_extractor_class"] = EXTRACTORS[policy]
    try:
        model = RecurrentPPO(policy, venv, seed=cfg.seed, device=device, verbose=0, **kwargs)
    except BaseException:
        venv.close()  # e.g. SB3 refused a setting: do not leave env workers behind
        raise
    model.set_logger(Logger(folder=None, output_formats=[]))  # values only; the callback writes them
    return model


def check_core(cfg: DictConfig) -> None:
    """RecurrentPPO's core is SB3's LSTM, sized by core.hidden_size: say so if the config says otherwise."""
    if cfg.core.name != "lstm":
        raise ValueError(
            f"algo=rppo trains sb3-contrib's LSTM policy: core must be lstm, got core={cfg.core.name}"
        )
    if cfg.algo.lstm_hidden_size != cfg.core.hidden_size:
        raise ValueError(
            f"algo.lstm_hidden_size ({cfg.algo.lstm_hidden_size}) differs from core.hidden_size "
            f"({cfg.core.hidden_size}); set core.hidden_size, algo.lstm_hidden_size follows it"
        )


class _LogAndCheckpoint(BaseCallback):
    """After each update: our tags, the progress bar, periodic checkpoints; stops on a signal."""

    def __init__(
        self, writer: SummaryWriter, bar: tqdm, stop: StopSignal, ckpt_path: Path, checkpoint_every: int
    ) -> None:
        super().__init__()
        self.writer, self.bar, self.stop = writer, bar, stop
        self.ckpt_path, self.checkpoint_every = ckpt_path, checkpoint_every
        self.updates = 0
        self.fps = 0.0  # env steps per second at the last update
        self._trained = False  # a rollout ended, so train() ran (or runs) on it
        self._grad_sq: list[torch.Tensor] = []  # per parameter, this backward
        self._grad_norms: list[torch.Tensor] = []  # per minibatch, before clipping
        self._hooks: list[Any] = []

    def _on_training_start(self) -> None:
        self.start_time, self.start_step = time.perf_counter(), self.model.num_timesteps
        # SB3 discards clip_grad_norm_'s result: sum |grad|² as gradients land, close it at the step.
        # The handles are removed at the end: a hook held by a parameter would keep the model alive.
        self._hooks = [
            p.register_post_accumulate_grad_hook(lambda p: self._grad_sq.append(p.grad.detach().pow(2).sum()))
            for p in self.model.policy.parameters()
        ]
        self._hooks.append(self.model.policy.optimizer.register_step_pre_hook(self._close_grad_norm))

    def _close_grad_norm(self, optimizer: Any, args: Any, kwargs: Any) -> None:
        if self._grad_sq:
            self._grad_norms.append(torch.stack(self._grad_sq).sum().sqrt())
            self._grad_sq.clear()

    def _on_step(self) -> bool:
        return self.stop.signal is None  # False ends learn() cleanly, mid-rollout

    def _on_rollout_start(self) -> None:
        self._log_update()

    def _on_rollout_end(self) -> None:
        self._trained = True

    def _on_training_end(self) -> None:
        self._log_update()

    def remove_hooks(self) -> None:
        for hook in self._hooks:
            hook.remove()
        self._hooks.clear()

    def _log_update(self) -> None:
        """Log the update that followed the last rollout (SB3 trains between the callbacks)."""
        if not self._trained:
            return
        self._trained = False
        self.updates += 1
        step, logger = self.model.num_timesteps, self.model.logger
        for key, value in logger.name_to_value.items():
            if key.startswith("train/") and "tensorboard" not in logger.name_to_excluded.get(key, ()):
                name, scale = _RENAMED.get(key, (key, 1.0))
                self.writer.add_scalar(name, scale * float(value), step)
        logger.dump(step)  # no output formats: clears the values for the next update
        if self._grad_norms:
            self.writer.add_scalar("train/grad_norm", float(torch.stack(self._grad_norms).mean()), step)
            self._grad_norms.clear()
        fps = self.fps = (step - self.start_step) / (time.perf_counter() - self.start_time)
        self.writer.add_scalar("time/fps", fps, step)
        ret = episode_mean(self.model, "r")
        if self.model.ep_info_buffer:
            self.writer.add_scalar("rollout/ep_rew_mean", ret, step)
            self.writer.add_scalar("rollout/ep_len_mean", episode_mean(self.model, "l"), step)
        self.bar.update(step - self.bar.n)
        self.bar.set_postfix(sps=f"{fps:.0f}", ret=f"{ret:.3f}")
        if self.updates % self.checkpoint_every == 0:
            save_model(self.model, self.ckpt_path)


def episode_mean(model: RecurrentPPO, key: str) -> float:
    """Mean of ``key`` ("r" return, "l" length) over the model's last 100 episodes; NaN if none."""
    buf = model.ep_info_buffer or []
    return float(np.mean([ep[key] for ep in buf])) if buf else float("nan")


def save_model(model: RecurrentPPO, path: Path) -> Path:
    """SB3's zip of ``model`` at ``path``, written atomically; with algo.normalize, VecNormalize's
    statistics beside it (``NORMALIZE_NAME``), as rl-zoo keeps them."""
    normalize = model.get_vec_normalize_env()
    if normalize is not None:  # pickles the statistics only (VecNormalize drops its venv)
        write_atomically(path.with_name(NORMALIZE_NAME), lambda f: pickle.dump(normalize, f))
    return write_atomically(path, model.save)


def checkpoint_steps(path: str | Path) -> int:
    """The env steps a ``checkpoint.zip`` was trained for (read without building a model)."""
    from stable_baselines3.common.save_util import load_from_zip_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    data, _, _ = load_from_zip_file(path, device="cpu", load_data=True)
    return int(data["num_timesteps"])


def resume(model: RecurrentPPO, path: str | Path, device: torch.device, seed: int) -> None:
    """Continue ``model`` (built from this run's config) from a ``checkpoint.zip``: its weights,
    optimizer state and env step count; fresh episodes, reseeded with ``seed`` + updates as
    our learner does (the LSTM states start from zero, as on any episode start)."""
    from stable_baselines3.common.save_util import load_from_zip_file

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} does not exist")
    data, _, _ = load_from_zip_file(path, device=device, load_data=True)
    model.set_parameters(str(path), exact_match=True, device=device)  # policy and optimizer
    model.num_timesteps = int(data["num_timesteps"])
    updates = model.num_timesteps // (model.n_steps * model.n_envs)
    model.get_env().seed(seed + updates)  # used by the reset at the start of learn()
    normalize = model.get_vec_normalize_env()
    if normalize is not None:
        stats = path.with_name(NORMALIZE_NAME)
        if not stats.is_file():
            raise FileNotFoundError(f"algo.normalize is set, but {str(stats)!r} (its statistics) is missing")
        with stats.open("rb") as f:
            saved = pickle.load(f)
        normalize.obs_rms, normalize.ret_rms = saved.obs_rms, saved.ret_rms


def train_recurrent_ppo(cfg: DictConfig, run_dir: Path | None, stop: StopSignal) -> dict[str, Any]:
    """The job for ``algo=rppo`` (``jobs.train`` calls it); returns the same summary as our learner's."""
    check_zoo_env(cfg)
    OmegaConf.resolve(cfg)
    rcfg = RecurrentPPOConfig.from_config(cfg.algo)
    model_envs = rcfg.n_envs or cfg.num_envs
    if cfg.resume:
        steps = checkpoint_steps(cfg.resume)
        spent = nothing_to_train(cfg, steps, steps // (rcfg.n_steps * model_envs), run_dir=run_dir)
        if spent is not None:
            return spent
    run_dir = Path(run_dir) if run_dir is not None else default_run_dir(cfg)
    write_config(run_dir, cfg)
    seed_and_threads(cfg)
    device = resolve_device(cfg.device)
    model = make_model(cfg, device, rcfg)
    venv = model.get_env()
    if cfg.resume:
        resume(model, cfg.resume, device, seed=cfg.seed)
    env_name = getattr(venv.unwrapped.env, "env_name", cfg.env.name)  # unwrapped: under a VecNormalize
    ckpt_path = run_dir / CHECKPOINT_NAME

    writer = open_writer(run_dir, cfg)
    writer.add_text(
        "policy", f"sb3-contrib RecurrentPPO, {type(model.policy).__name__}:\n```\n{model.policy}\n```"
    )
    start = model.num_timesteps
    bar = progress_bar(cfg, initial=start)
    callback = _LogAndCheckpoint(writer, bar, stop, ckpt_path, cfg.checkpoint_every)
    callback.updates = start // (rcfg.n_steps * model_envs)  # one update per rollout
    try:
        if stop.signal is None and start < cfg.total_steps:
            # reset_num_timesteps=False: learn counts on from a resumed run's steps
            model.learn(
                int(cfg.total_steps) - start, callback=callback, log_interval=None, reset_num_timesteps=False
            )
    finally:
        callback.remove_hooks()
        bar.close()
        save_model(model, ckpt_path)
        final = episode_mean(model, "r")
        write_hparams(writer, cfg, env_name, rcfg.n_steps, "ppo", rcfg.lr, final)
        writer.close()
        venv.close()
    return run_summary(
        cfg,
        env_name,
        final=final,
        step=model.num_timesteps,
        fps=callback.fps,
        updates=callback.updates,
        skipped_updates=0,  # SB3 applies every step (it does not skip non-finite gradients)
        run_dir=run_dir,
        checkpoint=ckpt_path,
        stop_signal=stop.signal,
    )
