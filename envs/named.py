"""The outermost wrapper of every env from :func:`envs.make_vector_env`."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

__all__ = ["NamedVectorEnv"]


class NamedVectorEnv(VectorWrapper):
    """Give a vector env a readable name and say which env crashed.

    Any exception from ``reset()``/``step()`` is re-raised as a ``RuntimeError`` that names
    the env, chained to the original. The first ``reset()`` without a seed uses ``seed``, so
    a run is reproducible even when the caller never passes one.

    Attributes:
        env_name: e.g. ``"popgym:RepeatPreviousEasy"``, ``"gym:CartPole-v1"``.
    """

    def __init__(self, env: VectorEnv, env_name: str, seed: int | None = None) -> None:
        super().__init__(env)
        self.env_name = env_name
        self._first_seed = seed

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Reset all sub-envs; returns obs batched as ``observation_space`` and info."""
        if seed is None:
            seed = self._first_seed
        self._first_seed = None
        try:
            return self.env.reset(seed=seed, options=options)
        except Exception as exc:
            raise RuntimeError(f"environment {self.env_name!r} crashed in reset(): {exc}") from exc

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step all sub-envs; rewards, terminations and truncations have shape (num_envs,)."""
        try:
            return self.env.step(actions)
        except Exception as exc:
            raise RuntimeError(f"environment {self.env_name!r} crashed in step(): {exc}") from exc
