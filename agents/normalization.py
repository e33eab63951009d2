"""Running normalisation of observations and rewards, with statistics a checkpoint can carry.

Streaming agents learn from one sample at a time, so they cannot normalise over a batch; Elsayed,
Vasan & Mahmood (2024, "Streaming deep RL finally works") keep running statistics instead:

    observations   o ← (o − μ) / sqrt(σ² + ε),   μ, σ² the running mean and variance of every
                   observation seen so far (Welford 1962; a batch merged with Chan et al. 1979)
    rewards        r ← r / sqrt(Var[G] + ε),      G_t = γ G_{t-1} + r_t the discounted return of each
                   environment's current episode, Var[G] its running variance over every step

Both update their statistics with a sample first and then normalise it. Rows holding NaN or Inf
never enter the statistics (they are counted in ``skipped``). Every statistic is a tensor, so
``state_dict()`` goes into a checkpoint loaded with ``weights_only=True``. Nothing here knows which
learner uses it.
"""

from __future__ import annotations

import numpy as np
import torch
from gymnasium import spaces
from torch import Tensor

__all__ = ["RewardScaler", "RunningMeanStd", "observation_statistics"]


class RunningMeanStd:
    """Per-element running mean and variance of samples of shape ``shape``, kept in float64.

    For a batch of m finite rows with mean x̄ and sum of squared deviations M2_x, merged into n
    samples so far (Chan, Golub & LeVeque 1979; one row at a time it is Welford's update):
        n' = n + m,   μ' = μ + (x̄ − μ) m / n',   M2' = M2 + M2_x + (x̄ − μ)² n m / n'
    and σ² = M2 / (n − 1), or 1 while n < 2 (so the first samples pass through unscaled).
    """

    def __init__(self, shape: tuple[int, ...] = (), device: torch.device | str | None = None) -> None:
        kw = {"dtype": torch.float64, "device": device}
        self.count = torch.zeros((), **kw)
        self.mean = torch.zeros(shape, **kw)
        self.m2 = torch.zeros(shape, **kw)
        self.skipped = torch.zeros((), **kw)  # rows left out because they were not finite

    @property
    def var(self) -> Tensor:
        return torch.where(self.count >= 2, self.m2 / (self.count - 1).clamp_min(1), torch.ones_like(self.m2))

    @torch.no_grad()
    def update(self, x: Tensor, mask: Tensor | None = None) -> None:
        """Add the rows of ``x`` (B, *shape) where ``mask`` (B,) is True (all rows if None)."""
        x = x.detach().to(self.mean.dtype).reshape(x.shape[0], *self.mean.shape)
        finite = torch.isfinite(x.reshape(x.shape[0], -1)).all(1)
        use = finite if mask is None else finite & mask.to(finite.device)
        self.skipped += (~finite).sum() if mask is None else (~finite & mask).sum()
        m = use.sum().to(self.count.dtype)
        if m == 0:  # sync point (a scalar): nothing to add
            return
        rows = x[use]
        batch_mean = rows.mean(0)
        batch_m2 = ((rows - batch_mean) ** 2).sum(0)
        total = self.count + m
        diff = batch_mean - self.mean
        self.mean += diff * (m / total)
        self.m2 += batch_m2 + diff * diff * (self.count * m / total)
        self.count = total

    def normalize(self, x: Tensor, eps: float = 1e-8) -> Tensor:
        """(x − μ) / sqrt(σ² + ε), in ``x``'s dtype."""
        return ((x - self.mean) / torch.sqrt(self.var + eps)).to(x.dtype)

    def state_dict(self) -> dict[str, Tensor]:
        return {"count": self.count, "mean": self.mean, "m2": self.m2, "skipped": self.skipped}

    def load_state_dict(self, sd: dict[str, Tensor]) -> None:
        for key, value in sd.items():
            setattr(self, key, value.to(device=self.mean.device, dtype=torch.float64).clone())


class RewardScaler:
    """Divide rewards by the running std of the discounted return (Elsayed et al.'s ScaleReward).

    Per environment b, with its episode's discounted return G (zero at an episode's first step):
        G_b ← γ G_b + r_b;  add G_b to the running variance;  r_b ← r_b / sqrt(Var[G] + ε)
    and G_b ← 0 after a step that ended the episode, so the next episode starts afresh. (Elsayed et
    al. and gymnasium's NormalizeReward zero G on the ending step itself, before adding its reward;
    here that step's reward still counts towards the return it ends.) Rows that are not finite or
    masked out (a NEXT_STEP autoreset step, whose reward belongs to no episode) change nothing.
    """

    def __init__(self, num_envs: int, gamma: float, device: torch.device | str | None = None) -> None:
        self.gamma = gamma
        self.stats = RunningMeanStd((), device)
        self.returns = torch.zeros(num_envs, dtype=torch.float64, device=device)

    @torch.no_grad()
    def __call__(
        self, reward: Tensor, ended: Tensor, mask: Tensor | None = None, eps: float = 1e-8
    ) -> Tensor:
        """Scale ``reward`` (B,); ``ended`` (B,) bool: the step ended its episode."""
        r = reward.detach().to(torch.float64)
        use = torch.isfinite(r) if mask is None else torch.isfinite(r) & mask
        self.returns = torch.where(use, self.gamma * self.returns + r, self.returns)
        self.stats.update(self.returns[:, None], use)
        self.returns = torch.where(use & ended, 0.0, self.returns)
        return (reward / torch.sqrt(self.stats.var + eps)).to(reward.dtype)

    def state_dict(self) -> dict[str, Tensor | dict[str, Tensor]]:
        return {"stats": self.stats.state_dict(), "returns": self.returns}

    def load_state_dict(self, sd: dict) -> None:
        self.stats.load_state_dict(sd["stats"])
        self.returns = sd["returns"].to(device=self.returns.device, dtype=torch.float64).clone()


def observation_statistics(
    space: spaces.Space, device: torch.device | str | None
) -> dict[str, RunningMeanStd]:
    """Running statistics for the flat float parts of an observation space, by part: "" for a
    1-D float Box, a Dict's keys for its 1-D float Box parts (images, discrete and binary parts
    pass through). A space with no such part cannot be normalised: refused, naming it."""

    def flat_float(s: spaces.Space) -> bool:
        return isinstance(s, spaces.Box) and len(s.shape) == 1 and np.issubdtype(s.dtype, np.floating)

    if flat_float(space):
        return {"": RunningMeanStd(space.shape, device)}
    parts = space.spaces if isinstance(space, spaces.Dict) else {}
    stats = {key: RunningMeanStd(part.shape, device) for key, part in parts.items() if flat_float(part)}
    if not stats:
        raise ValueError(
            f"algo.normalize_obs normalises flat float Box observations (or a Dict's flat float Box "
            f"parts), and {space} has none: images, discrete and binary observations are not "
            "normalised; leave algo.normalize_obs off"
        )
    return stats
