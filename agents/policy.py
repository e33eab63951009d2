"""The agent's network: encoder by observation space → recurrent core → heads by action space.

The core is driven by a gradient rule (agents/rules), never called for gradients here. Its input
at step t is x_t = [encoder(obs_t); prev_action_t; prev_reward_t; episode_start_t], the extra
inputs being optional (Irie et al. 2023; R2D2). The stem (encoder) is trained by BPTT within the
rollout: its gradient flows back from every later step of the chunk through the core.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import Tensor, nn
from torch.distributions import Categorical, Distribution, Independent, Normal

from agents.encoders import make_encoder
from agents.observations import Observation
from agents.registry import make_core

__all__ = ["ActorCritic", "MultiCategorical", "greedy_action"]


class MultiCategorical(Distribution):
    """Independent categoricals, one per MultiDiscrete component (factorised policy)."""

    arg_constraints: ClassVar[dict] = {}

    def __init__(self, logits: Tensor, nvec: list[int]) -> None:
        self.dists = [Categorical(logits=c, validate_args=False) for c in logits.split(nvec, dim=-1)]
        super().__init__(batch_shape=logits.shape[:-1], validate_args=False)

    def sample(self, sample_shape: tuple[int, ...] = ()) -> Tensor:
        return torch.stack([d.sample(torch.Size(sample_shape)) for d in self.dists], dim=-1)

    def log_prob(self, value: Tensor) -> Tensor:
        return sum(d.log_prob(value[..., k]) for k, d in enumerate(self.dists))

    def entropy(self) -> Tensor:
        return sum(d.entropy() for d in self.dists)

    @property
    def mode(self) -> Tensor:
        return torch.stack([d.probs.argmax(-1) for d in self.dists], dim=-1)


class ActorCritic(nn.Module):
    """Encoder, core and heads. Shapes: obs (B, ...) → x (B, D); core out (B, N) → dist, value (B,).

    A Dict or Tuple observation space gets one encoder per part, their outputs concatenated.

    Args:
        obs_space, action_space: the (single-env) gymnasium spaces.
        core: core name ("elstm", "rhn", "rtu", "elstm_rtu", "lstm", "gru"); ``core_kwargs`` e.g. depth.
        hidden_size: N.
        encoder: "auto", "nature" or "impala" (images); ``mlp_hidden`` for vector observations.
        prev_action, prev_reward, start_flag: which extra inputs the core receives.
        log_std_min: Box actions only: the Gaussian's σ is exp(max(log_std, log_std_min)); None:
            unbounded. A floor keeps a collapsing σ from making one PPO step move the policy far.
    """

    def __init__(
        self,
        obs_space: spaces.Space,
        action_space: spaces.Space,
        core: str = "elstm",
        hidden_size: int = 128,
        core_kwargs: dict[str, Any] | None = None,
        encoder: str = "auto",
        mlp_hidden: list[int] | None = None,
        prev_action: bool = True,
        prev_reward: bool = True,
        start_flag: bool = True,
        log_std_min: float | None = None,
    ) -> None:
        super().__init__()
        self.log_std_min = log_std_min
        self.action_space = action_space
        self.use_prev_action, self.use_prev_reward, self.use_start = prev_action, prev_reward, start_flag
        self.encoder = make_encoder(obs_space, encoder, mlp_hidden)
        if isinstance(action_space, spaces.Discrete):
            self.nvec, n_logits, self.action_features = (
                [int(action_space.n)],
                int(action_space.n),
                int(action_space.n),
            )
        elif isinstance(action_space, spaces.MultiDiscrete) and action_space.nvec.ndim == 1:
            self.nvec = [int(n) for n in action_space.nvec]
            n_logits = self.action_features = sum(self.nvec)
        elif isinstance(action_space, spaces.Box) and len(action_space.shape) == 1:
            self.nvec, n_logits = [], int(action_space.shape[0])
            self.action_features = n_logits
            self.log_std = nn.Parameter(torch.zeros(n_logits))
        else:
            raise ValueError(
                f"unsupported action space {action_space}: supported are Discrete, MultiDiscrete "
                "and flat Box (Gaussian policy)"
            )
        core_in = (
            self.encoder.out_size + self.action_features * prev_action + int(prev_reward) + int(start_flag)
        )
        self.core = make_core(core, core_in, hidden_size, **(core_kwargs or {}))
        self.actor = nn.Linear(hidden_size, n_logits)
        self.critic = nn.Linear(hidden_size, 1)
        # what the heads read: the core's output, or (stream learner, algo.head_norm) its LayerNorm
        self.head_norm: nn.Module = nn.Identity()
        nn.init.orthogonal_(self.actor.weight, 0.01)  # near-uniform initial policy (SB3, CleanRL)
        nn.init.zeros_(self.actor.bias)
        nn.init.orthogonal_(self.critic.weight, 1.0)
        nn.init.zeros_(self.critic.bias)

    @classmethod
    def from_config(
        cls,
        core: Mapping[str, Any],
        policy: Mapping[str, Any],
        obs_space: spaces.Space,
        action_space: spaces.Space,
        log_std_min: float | None = None,
    ) -> ActorCritic:
        """Build from the Hydra ``core`` and ``policy`` groups (and the learner's ``algo.log_std_min``)."""
        return cls(
            obs_space,
            action_space,
            core=core["name"],
            hidden_size=core["hidden_size"],
            core_kwargs=dict(core.get("kwargs") or {}),
            encoder=policy["encoder"],
            mlp_hidden=list(policy["mlp_hidden"]),
            prev_action=policy["prev_action"],
            prev_reward=policy["prev_reward"],
            start_flag=policy["start_flag"],
            log_std_min=log_std_min,
        )

    def action_encoding(self, action: Tensor) -> Tensor:
        """(B,) / (B, K) actions → (B, action_features): one-hot for discrete, raw for Box."""
        if not self.nvec:
            return action.float()
        action = action.long().reshape(action.shape[0], -1)
        return torch.cat([F.one_hot(action[:, k], n) for k, n in enumerate(self.nvec)], 1).float()

    def core_input(
        self, obs: Observation, prev_action: Tensor, prev_reward: Tensor, episode_start: Tensor
    ) -> Tensor:
        """x_t, (B, D). obs is (B, ...), or {key: (B, ...)} for a Dict space; prev_action and
        prev_reward are those that led to obs (zeros at a start)."""
        parts = [self.encoder(obs)]
        keep = (~episode_start).float()[:, None]
        if self.use_prev_action:
            parts.append(self.action_encoding(prev_action) * keep)
        if self.use_prev_reward:
            # a NaN reward from a broken env must not poison the state (NaN · 0 is still NaN)
            reward = torch.nan_to_num(prev_reward.float(), nan=0.0, posinf=0.0, neginf=0.0)
            parts.append(reward[:, None] * keep)
        if self.use_start:
            parts.append(episode_start.float()[:, None])
        return torch.cat(parts, dim=1)

    def heads(self, out: Tensor) -> tuple[Distribution, Tensor]:
        """Policy distribution and value from the core's output (..., N)."""
        out = self.head_norm(out)
        logits, value = self.actor(out), self.critic(out).squeeze(-1)
        if not self.nvec:
            log_std = self.log_std if self.log_std_min is None else self.log_std.clamp(min=self.log_std_min)
            return Independent(Normal(logits, log_std.exp().expand_as(logits), validate_args=False), 1), value
        if len(self.nvec) == 1 and isinstance(self.action_space, spaces.Discrete):
            return Categorical(logits=logits, validate_args=False), value
        return MultiCategorical(logits, self.nvec), value


def greedy_action(dist: Distribution) -> Tensor:
    """The most likely action of a Categorical, MultiCategorical or Gaussian policy."""
    if isinstance(dist, Categorical):
        return dist.probs.argmax(-1)
    return dist.mode
