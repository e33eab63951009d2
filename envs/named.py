"""The outermost wrapper of every env from :func:`envs.make_vector_env`."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import VectorEnv, VectorWrapper

__all__ = ["NamedVectorEnv"]


class NamedVectorEnv(VectorWrapper):
    """Give a vector env a readable name and say which env crashed.

    Any exception from ``reset()``/``step()`` is re-raised as a ``RuntimeError`` that names
    the env, chained to the original. An observation with NaN or ±Inf in a float part raises a
    ``ValueError`` that names the env and the sub-envs: no policy can act on it, and it would
    enter its row's recurrent state (``info``'s final observations are not checked: a NaN there
    reaches only a bootstrap value, whose non-finite update is skipped). The first ``reset()``
    without a seed uses ``seed``, so a run is reproducible even when the caller never passes one.

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
            obs, info = self.env.reset(seed=seed, options=options)
        except Exception as exc:
            raise RuntimeError(f"environment {self.env_name!r} crashed in reset(): {exc}") from exc
        self._check_finite(obs, "reset")
        return obs, info

    def step(self, actions: Any) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step all sub-envs; rewards, terminations and truncations have shape (num_envs,)."""
        try:
            out = self.env.step(actions)
        except Exception as exc:
            raise RuntimeError(f"environment {self.env_name!r} crashed in step(): {exc}") from exc
        self._check_finite(out[0], "step")
        return out

    def _check_finite(self, obs: Any, call: str) -> None:
        parts = obs.items() if isinstance(obs, dict) else [(None, obs)]
        for key, part in parts:
            part = np.asarray(part)
            if part.dtype.kind != "f":  # integer and bool parts cannot hold NaN: no cost for pixels
                continue
            finite = np.isfinite(part.reshape(part.shape[0], -1)).all(axis=1)
            if not finite.all():
                where = "" if key is None else f" (its {key!r} part)"
                raise ValueError(
                    f"environment {self.env_name!r} returned a non-finite observation{where} from "
                    f"{call}() in sub-env(s) {np.flatnonzero(~finite).tolist()}; the agent cannot "
                    "act on NaN or Inf: fix the env, or end its episode before it returns one"
                )
