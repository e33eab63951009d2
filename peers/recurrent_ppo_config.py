"""The peer's keys (``algo.*`` of configs/algo/rppo.yaml and rppo_zoo.yaml), checked, and the
keyword arguments of ``RecurrentPPO`` they make (peers/recurrent_ppo.py trains with them)."""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any

from omegaconf import DictConfig

from agents.learner_config import LearnerConfig
from peers.sb3_policy import POLICIES

__all__ = ["SCHEDULES", "LinearSchedule", "RecurrentPPOConfig", "check_zoo_env"]

SCHEDULES = ("constant", "linear")


@dataclass
class RecurrentPPOConfig:
    """``algo.*`` of configs/algo/rppo.yaml; defaults are sb3-contrib 2.x's ``RecurrentPPO`` ones."""

    preset: str = "sb3-contrib"  # what the settings are: sb3-contrib's defaults, or zoo (algo=rppo_zoo)
    n_envs: int | None = None  # envs for the peer (rl-zoo's n_envs); None: the config's num_envs
    policy: str = "auto"  # auto: MultiInputLstmPolicy for Dict obs, CnnLstmPolicy for images, else Mlp
    n_steps: int = 128  # rollout length per env (our rollout_len)
    batch_size: int = 128  # minibatch size in env steps (sequences are cut at n_steps)
    n_epochs: int = 10
    lr: float = 3e-4
    lr_schedule: str = "constant"  # constant | linear (lr × the fraction of training left: rl-zoo's lin_)
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    clip_range_schedule: str = "constant"  # constant | linear, as lr_schedule
    clip_range_vf: float | None = None
    normalize_advantage: bool = True
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    target_kl: float | None = None
    lstm_hidden_size: int = 256  # follows core.hidden_size in the config
    n_lstm_layers: int = 1
    shared_lstm: bool = False  # one LSTM for actor and critic (needs enable_critic_lstm false)
    enable_critic_lstm: bool = True  # the critic has its own LSTM
    net_arch: list[int] | None = None  # MLP after the LSTM; None: SB3's default
    ortho_init: bool = True
    use_sde: bool = False  # generalized state-dependent exploration (Box actions only)
    sde_sample_freq: int = -1  # with use_sde: resample the noise matrix every n steps; -1: per rollout
    log_std_init: float = 0.0  # initial log standard deviation of a Box action's Gaussian
    normalize: bool = False  # SB3's VecNormalize: running mean/std of observations and of returns (rewards)

    def __post_init__(self) -> None:
        if self.policy not in POLICIES:
            raise ValueError(f"algo.policy must be one of {', '.join(POLICIES)}, got {self.policy!r}")
        for key in ("lr_schedule", "clip_range_schedule"):
            if getattr(self, key) not in SCHEDULES:
                valid = ", ".join(SCHEDULES)
                raise ValueError(f"algo.{key} must be one of {valid}, got {getattr(self, key)!r}")
        for key in ("n_steps", "batch_size", "n_epochs", "lstm_hidden_size", "n_lstm_layers", "n_envs"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"algo.{key} must be >= 1, got {getattr(self, key)}")

    @classmethod
    def from_config(cls, algo: Mapping[str, Any]) -> RecurrentPPOConfig:
        """From the ``algo`` group. Keys of our learner (an env config may set them, e.g. the
        recall task's ``ent_coef``; shared names apply) are ignored with a warning when rppo has
        no such key; any other unknown key is an error that lists the valid ones."""
        own = {f.name for f in fields(cls)}
        values = {k: v for k, v in algo.items() if k != "name"}
        unknown = sorted(set(values) - own)
        learner_only = [k for k in unknown if k in {f.name for f in fields(LearnerConfig)}]
        if learner_only:
            warnings.warn(f"algo=rppo ignores our learner's keys {learner_only}", stacklevel=2)
        if set(unknown) - set(learner_only):
            bad = sorted(set(unknown) - set(learner_only))
            raise ValueError(f"unknown algo.* keys for algo=rppo: {bad}; valid keys: {sorted(own)}")
        return cls(**{k: v for k, v in values.items() if k in own})

    def model_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``RecurrentPPO(policy, env, **kwargs)`` (not policy/env/seed/device)."""
        policy_kwargs: dict[str, Any] = {
            "lstm_hidden_size": self.lstm_hidden_size,
            "n_lstm_layers": self.n_lstm_layers,
            "shared_lstm": self.shared_lstm,
            "enable_critic_lstm": self.enable_critic_lstm,
            "ortho_init": self.ortho_init,
            "log_std_init": self.log_std_init,
        }
        if self.net_arch is not None:
            policy_kwargs["net_arch"] = list(self.net_arch)
        return {
            "learning_rate": _schedule(self.lr, self.lr_schedule),
            "n_steps": self.n_steps,
            "batch_size": self.batch_size,
            "n_epochs": self.n_epochs,
            "gamma": self.gamma,
            "gae_lambda": self.gae_lambda,
            "clip_range": _schedule(self.clip_range, self.clip_range_schedule),
            "clip_range_vf": self.clip_range_vf,
            "normalize_advantage": self.normalize_advantage,
            "ent_coef": self.ent_coef,
            "vf_coef": self.vf_coef,
            "max_grad_norm": self.max_grad_norm,
            "target_kl": self.target_kl,
            "use_sde": self.use_sde,
            "sde_sample_freq": self.sde_sample_freq,
            "policy_kwargs": policy_kwargs,
        }


class LinearSchedule:
    """``value`` × the fraction of training left (SB3 passes ``progress_remaining``, 1 → 0): rl-zoo's
    ``lin_<value>``. A class, not a closure, so that the saved model pickles it by name."""

    def __init__(self, value: float) -> None:
        self.value = value

    def __call__(self, progress_remaining: float) -> float:
        return progress_remaining * self.value


def _schedule(value: float, schedule: str) -> float | LinearSchedule:
    return LinearSchedule(value) if schedule == "linear" else value


def check_zoo_env(cfg: DictConfig) -> None:
    """``algo=rppo_zoo`` picks rl-zoo's preset by ``env.id``: an env the zoo does not tune gets an error
    that names the ones it does (else OmegaConf's 'interpolation key not found')."""
    if cfg.algo.get("preset") == "zoo" and cfg.env.get("id") not in cfg.get("zoo", {}):
        raise ValueError(
            f"algo=rppo_zoo has rl-zoo's tuned settings for env.id {', '.join(cfg.zoo)}; "
            f"got {cfg.env.get('id')!r}. Use algo=rppo (sb3-contrib's defaults) for other envs"
        )
