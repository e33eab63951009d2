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
    """sqrt(num / den) for norms num, den ≥ 0, each raised to at least the smallest normal number:
    1 where both are zero (a freshly reset trace), and always finite and positive. Any positive
    ratio that does not depend on the step's signs keeps the estimate unbiased."""
    tiny = torch.finfo(num.dtype).tiny
    return torch.sqrt(num.clamp_min(tiny) / den.clamp_min(tiny))
