"""Independent random signs, one per environment per draw."""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["random_signs", "safe_ratio_sqrt"]


def random_signs(shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """±1 with equal probability, in ``like``'s dtype and device, from torch's generator."""
    bits = torch.randint(0, 2, shape, device=like.device, generator=generator)
    return (2 * bits - 1).to(like.dtype)


def safe_ratio_sqrt(num: Tensor, den: Tensor) -> Tensor:
    """sqrt(num / den), and 1 where either is zero (a freshly reset trace: its term vanishes)."""
    ok = (num > 0) & (den > 0)
    return torch.where(ok, torch.sqrt(num / torch.where(ok, den, 1.0)), torch.ones_like(num))
