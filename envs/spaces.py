"""Which spaces the agents can consume, checked once when an env is made."""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv

__all__ = ["check_spaces"]

_SUPPORTED_OBS = "1-D float Box, (C, H, W) uint8 Box, Discrete or MultiDiscrete"
_SUPPORTED_ACTIONS = "Discrete, MultiDiscrete or 1-D float Box"


def check_spaces(env: VectorEnv, env_name: str) -> None:
    """Raise ``ValueError`` naming the space if the agents cannot encode it.

    Observations: 1-D float ``Box``; uint8 ``Box`` image, channels-first (C, H, W);
    ``Discrete``; 1-D ``MultiDiscrete``. Actions: ``Discrete``, 1-D ``MultiDiscrete``,
    1-D float ``Box``. Discrete spaces must start at 0 because the agent one-hot encodes
    (or indexes) them by value.
    """
    obs_problem = _observation_problem(env.single_observation_space)
    if obs_problem:
        raise ValueError(
            f"environment {env_name!r} has an unsupported observation space "
            f"{env.single_observation_space}: {obs_problem} (supported: {_SUPPORTED_OBS})"
        )
    action_problem = _action_problem(env.single_action_space)
    if action_problem:
        raise ValueError(
            f"environment {env_name!r} has an unsupported action space "
            f"{env.single_action_space}: {action_problem} (supported: {_SUPPORTED_ACTIONS})"
        )


def _observation_problem(space: spaces.Space) -> str | None:
    if isinstance(space, spaces.Box):
        if np.issubdtype(space.dtype, np.floating):
            return None if len(space.shape) == 1 else "float Box observations must be 1-D"
        if space.dtype == np.uint8 and len(space.shape) == 3:
            channels, height, width = space.shape
            if channels < min(height, width):
                return None
            return "uint8 images must be channels-first (C, H, W); this looks channels-last"
        return "Box observations must be 1-D float vectors or 3-D uint8 images"
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return _discrete_problem(space)
    return f"{type(space).__name__} spaces cannot be encoded by the agents"


def _action_problem(space: spaces.Space) -> str | None:
    if isinstance(space, spaces.Box):
        if np.issubdtype(space.dtype, np.floating) and len(space.shape) == 1:
            return None
        return "Box actions must be 1-D float vectors"
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return _discrete_problem(space)
    return f"{type(space).__name__} spaces cannot be produced by the agents"


def _discrete_problem(space: spaces.Discrete | spaces.MultiDiscrete) -> str | None:
    if isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim != 1:
        return "MultiDiscrete spaces must be 1-D"
    if np.any(space.start != 0):
        return "discrete spaces must start at 0"
    return None
