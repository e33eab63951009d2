"""Which spaces the agents can consume, checked once when an env is made.

Observations reach this check after :mod:`envs.observations` has laid them out for the agents
(images channels-first, n-D Boxes flattened, Dict/Tuple flattened into one Dict, parts that
cannot be encoded dropped), so what is refused here is what no layout can fix.
"""

from __future__ import annotations

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv

__all__ = ["SUPPORTED_OBSERVATIONS", "check_spaces", "image_layout", "observation_problem"]

SUPPORTED_OBSERVATIONS = (
    "Box (vectors; n-D Boxes are flattened), uint8 image Box (C, H, W) or (H, W, C), Discrete, "
    "MultiDiscrete, MultiBinary, and Dict or Tuple spaces of these"
)
_SUPPORTED_ACTIONS = "Discrete, MultiDiscrete or 1-D float Box"


def check_spaces(env: VectorEnv, env_name: str) -> None:
    """Raise ``ValueError`` naming the space if the agents cannot encode it.

    Observations: 1-D numeric ``Box``; uint8 ``Box`` image, channels-first (C, H, W);
    ``Discrete``; 1-D ``MultiDiscrete`` or ``MultiBinary``; a ``Dict`` or ``Tuple`` of these.
    Actions: ``Discrete``, 1-D ``MultiDiscrete``, 1-D float ``Box``. Discrete spaces must start
    at 0 because the agent one-hot encodes (or indexes) them by value.
    """
    obs_problem = observation_problem(env.single_observation_space)
    if obs_problem:
        raise ValueError(
            f"environment {env_name!r} has an unsupported observation space "
            f"{env.single_observation_space}: {obs_problem} (supported: {SUPPORTED_OBSERVATIONS})"
        )
    action_problem = _action_problem(env.single_action_space)
    if action_problem:
        raise ValueError(
            f"environment {env_name!r} has an unsupported action space "
            f"{env.single_action_space}: {action_problem} (supported: {_SUPPORTED_ACTIONS})"
        )


def image_layout(space: spaces.Space) -> str | None:
    """``"CHW"`` or ``"HWC"`` for a 3-D uint8 Box whose channel axis is the shortest, else None.

    The channel axis is told apart by size, as SB3 does: it must be shorter than both image axes.
    """
    if not (isinstance(space, spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3):
        return None
    first, middle, last = space.shape
    if first < min(middle, last):
        return "CHW"
    if last < min(first, middle):
        return "HWC"
    return None


def observation_problem(space: spaces.Space) -> str | None:
    """Why the agents cannot encode ``space`` as it is, or None if they can."""
    if isinstance(space, spaces.Box):
        if len(space.shape) == 3 and space.dtype == np.uint8:
            if image_layout(space) == "CHW":
                return None
            return "uint8 images must be channels-first (C, H, W), the channel axis the shortest"
        if len(space.shape) != 1:
            return "Box observations must be 1-D vectors or 3-D uint8 images"
        if not (np.issubdtype(space.dtype, np.number) or space.dtype == np.bool_):
            return f"Box observations must be numeric, got dtype {space.dtype}"
        return None
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return _discrete_problem(space)
    if isinstance(space, spaces.MultiBinary):
        return None if len(space.shape) == 1 else "MultiBinary observations must be 1-D"
    if isinstance(space, (spaces.Dict, spaces.Tuple)):
        items = space.spaces.items() if isinstance(space, spaces.Dict) else enumerate(space.spaces)
        if not len(space.spaces):
            return f"an empty {type(space).__name__} space has nothing to encode"
        problems = [f"{key!r}: {p}" for key, sub in items if (p := observation_problem(sub))]
        return "; ".join(problems) or None
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
