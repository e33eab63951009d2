"""The learner's hyperparameters (the Hydra ``algo`` group), apart from the learner, so that the
peer can tell our keys from its own without importing our training loop."""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["LearnerConfig"]


@dataclass
class LearnerConfig:
    """Hyperparameters of the update (the Hydra ``algo`` group). The defaults are those of
    configs/learner/default.yaml, which says why (a test holds the two equal)."""

    rollout_len: int = 8  # M: environment steps per rollout (1 = fully online)
    update: str = "ppo"  # "a2c": one step per rollout; "ppo": clipped epochs over the rollout
    gamma: float = 0.99
    gae_lambda: float = 0.95
    lr: float = 1e-3
    lr_final: float | None = None  # None: constant; else linear from lr to this at total_steps
    lr_decay_after: int | None = None  # None: lr_final's schedule starts at step 0; else lr is held
    # for this many env steps, then linear to lr_final (0 if None) at total_steps
    optimizer: str = "adam"  # "adam" or "rmsprop" (IMPALA)
    num_epochs: int = 4  # PPO epochs over each rollout
    num_minibatches: int = 4  # PPO minibatches, each a set of whole environments
    clip_coef: float = 0.2  # PPO ratio clip
    ent_coef: float = 0.05  # entropy bonus (configs/learner/default.yaml says why 0.05)
    ent_coef_final: float | None = None  # None: constant; else linear from ent_coef to this at the
    # learner's total_steps (the run's budget)
    ent_decay_after: int | None = None  # as lr_decay_after, for ent_coef: held for this many env
    # steps, then linear to ent_coef_final (0 if None) at total_steps
    vf_coef: float = 0.5
    max_grad_norm: float = 0.5
    norm_adv: bool = True  # normalise advantages (per minibatch)
    eps: float = 1e-5  # optimiser epsilon
    rms_alpha: float = 0.99  # RMSprop smoothing
    fused_optimizer: bool = True  # Adam: one fused kernel (its CPU step ~8x faster than the
    # per-tensor loop), which also skips a non-finite step on the device; RMSprop: multi-tensor
    compile: bool = False  # torch.compile the minibatch's forward and loss (configs/learner/default.yaml
    # says when it pays)
    normalize_obs: bool = False  # running mean/std of flat float observations (Dict: its flat float
    # Box parts); refused for a space with none
    normalize_reward: bool = False  # GAE's rewards / running std of the discounted return; the
    # logged episode returns and the core's prev_reward input stay raw
    log_std_min: float | None = -3.0  # Box actions: the policy's σ is exp(max(log_std, this)); None: no
    # floor (built into the network, agents/policy.py, not used by the update itself)

    def __post_init__(self) -> None:
        if self.update not in ("a2c", "ppo"):
            raise ValueError(f"update must be 'a2c' or 'ppo', got {self.update!r}")
        if self.optimizer not in ("adam", "rmsprop"):
            raise ValueError(f"optimizer must be 'adam' or 'rmsprop', got {self.optimizer!r}")
        if self.rollout_len < 1:
            raise ValueError(f"rollout_len must be >= 1, got {self.rollout_len}")
        if self.log_std_min is not None and not math.isfinite(self.log_std_min):
            raise ValueError(f"log_std_min must be a finite number or None, got {self.log_std_min}")
        for key in ("lr_final", "ent_coef_final"):
            if getattr(self, key) is not None and getattr(self, key) < 0:
                raise ValueError(f"{key} must be >= 0 or None, got {getattr(self, key)}")
        for key in ("lr_decay_after", "ent_decay_after"):
            if getattr(self, key) is not None and getattr(self, key) < 1:
                raise ValueError(f"{key} must be >= 1 or None, got {getattr(self, key)}")
