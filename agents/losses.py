"""Pure functions of the actor-critic update: GAE(λ), advantage normalisation, the loss."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

__all__ = ["LossTerms", "actor_critic_loss", "explained_variance", "gae", "masked_mean", "normalize"]


def gae(
    rewards: Tensor,
    values: Tensor,
    next_value: Tensor,
    terminated: Tensor,
    ended: Tensor,
    gamma: float,
    lam: float,
) -> tuple[Tensor, Tensor]:
    """Generalised advantage estimation (Schulman et al. 2016), time-first.

        δ_t = r_t + γ V_{t+1} (1 − terminated_t) − V_t
        A_t = δ_t + γ λ (1 − ended_t) A_{t+1}

    ``ended`` = terminated or truncated: the trace stops at every episode end, but only a true
    termination drops the bootstrap, so truncated episodes bootstrap from V_{t+1} (with NEXT_STEP
    autoreset that is the value of the final observation, computed on the step that resets).
    rewards, values, terminated, ended: (M, B); next_value: (B,) = V of the step after the rollout.
    Returns (advantages, returns), each (M, B).
    """
    m, dtype = rewards.shape[0], torch.promote_types(rewards.dtype, values.dtype)
    advantages = torch.zeros_like(values, dtype=dtype)
    last = torch.zeros_like(next_value, dtype=dtype)
    for t in reversed(range(m)):
        v_next = next_value if t == m - 1 else values[t + 1]
        delta = rewards[t] + gamma * v_next * (~terminated[t]).to(dtype) - values[t]
        last = delta + gamma * lam * (~ended[t]).to(dtype) * last
        advantages[t] = last
    return advantages, advantages + values


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    """Mean of x over the entries where mask is True (0 if there are none)."""
    # where(), not x * mask: inf or NaN in a masked-out entry must not leak (inf · 0 = NaN)
    return torch.where(mask, x, 0).sum() / mask.sum().clamp_min(1).to(x.dtype)


def normalize(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero mean, unit std over the masked entries (POPGym's ±1/T rewards need it)."""
    mean = masked_mean(x, mask)
    std = masked_mean((x - mean) ** 2, mask).sqrt()
    return (x - mean) / (std + eps)


class LossTerms(NamedTuple):
    loss: Tensor
    policy_loss: Tensor
    value_loss: Tensor
    entropy: Tensor
    approx_kl: Tensor
    clip_fraction: Tensor


def actor_critic_loss(
    log_prob: Tensor,
    entropy: Tensor,
    value: Tensor,
    old_log_prob: Tensor,
    advantages: Tensor,
    returns: Tensor,
    valid: Tensor,
    vf_coef: float,
    ent_coef: float,
    clip_coef: float | None = None,
) -> LossTerms:
    """A2C loss, or PPO's clipped surrogate when ``clip_coef`` is set; means over valid steps.

    A2C:  L_π = −E[A log π(a|h)]
    PPO:  L_π = −E[min(ρ A, clip(ρ, 1 ± ε) A)],  ρ = π(a|h) / π_old(a|h)
    L = L_π + c_v · ½ E[(V − R)²] − c_e · E[H(π)]
    """
    # Zero the masked-out steps first, so that nothing computed from them reaches the gradient.
    log_prob, entropy, value, old_log_prob, advantages, returns = (
        torch.where(valid, t, 0) for t in (log_prob, entropy, value, old_log_prob, advantages, returns)
    )
    log_ratio = log_prob - old_log_prob
    ratio = log_ratio.exp()
    if clip_coef is None:
        pg = -advantages * log_prob
    else:
        pg = -torch.min(advantages * ratio, advantages * ratio.clamp(1 - clip_coef, 1 + clip_coef))
    policy_loss = masked_mean(pg, valid)
    value_loss = 0.5 * masked_mean((value - returns) ** 2, valid)
    ent = masked_mean(entropy, valid)
    with torch.no_grad():
        approx_kl = masked_mean((ratio - 1) - log_ratio, valid)
        eps = 0.2 if clip_coef is None else clip_coef
        clip_fraction = masked_mean(((ratio - 1).abs() > eps).float(), valid)
    loss = policy_loss + vf_coef * value_loss - ent_coef * ent
    return LossTerms(loss, policy_loss, value_loss, ent, approx_kl, clip_fraction)


def explained_variance(values: Tensor, returns: Tensor, valid: Tensor) -> float:
    """1 − Var[R − V] / Var[R] over valid steps (SB3's train/explained_variance)."""
    v, r = values[valid], returns[valid]
    var_r = r.var() if r.numel() > 1 else torch.tensor(0.0)
    return float("nan") if var_r == 0 else float(1 - (r - v).var() / var_r)
