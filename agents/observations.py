"""Observations as the learner stores them: one tensor, or a dict of tensors for Dict spaces.

The env factory hands Dict observations over as a dict of arrays (one key per part, see
envs/observations.py); these helpers let the learner convert, stack and index both forms alike,
so a rollout's ``obs`` is (M, B, ...) or {key: (M, B, ...)}.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeAlias

import numpy as np
import torch
from torch import Tensor

__all__ = ["Observation", "map_obs", "obs_to_tensor", "replace_rows", "stack_obs"]

Observation: TypeAlias = Tensor | Mapping[str, "Observation"]


def map_obs(fn: Callable[[Any], Any], obs: Any) -> Any:
    """``fn`` applied to every array or tensor of ``obs``, keeping the dict structure."""
    if isinstance(obs, Mapping):
        return {key: map_obs(fn, value) for key, value in obs.items()}
    return fn(obs)


def obs_to_tensor(obs: Any, device: torch.device) -> Observation:
    """An array (or dict of arrays) as a tensor (or dict of tensors) on ``device``."""
    return map_obs(lambda x: torch.as_tensor(np.asarray(x), device=device), obs)


def replace_rows(batch: Any, rows_from: Any, rows: np.ndarray) -> Any:
    """A copy of the batched observation ``batch`` with rows ``rows`` taken from the per-env
    sequence ``rows_from`` (arrays, or dicts of arrays as Dict spaces batch): e.g. the final
    observations of the envs whose episodes just ended."""
    if isinstance(batch, dict):
        return {
            k: replace_rows(v, [r[k] if r is not None else None for r in rows_from], rows)
            for k, v in batch.items()
        }
    out = np.array(batch, copy=True)
    for i in rows:
        out[i] = rows_from[i]
    return out


def stack_obs(steps: Sequence[Observation]) -> Observation:
    """Stack T per-step observations along a new leading time axis: (B, ...) -> (T, B, ...)."""
    first = steps[0]
    if isinstance(first, Mapping):
        return {key: stack_obs([step[key] for step in steps]) for key in first}
    return torch.stack(list(steps))
