"""MiniGrid's symbolic view read as categories, not as pixels.

A MiniGrid env observes ``image``: a (view, view, 3) uint8 grid whose cells hold the indices of an
object (0-10), a colour (0-5) and a state (0-2). It is declared as a 0-255 image, so an image torso
would scale it by 1/255: in MiniGrid-Memory the cue (key 5 or ball 6) would differ by 0.004 in one
input. :class:`SymbolicGrid` declares the grid as what it is, a ``MultiDiscrete`` of those indices,
which the agents one-hot encode (49 cells x 20 categories for a 7x7 view), as SB3 does with
MultiDiscrete observations. The values are unchanged.

It applies to a MiniGrid env whose observation is that grid, alone or as a Dict's ``image`` key
(``minigrid.wrappers.ImgObsWrapper`` included). Pixel views (``RGBImgPartialObsWrapper``) keep the
image path. :func:`symbolic_minigrid` is called on every env the ``gym`` adapter builds.
"""

from __future__ import annotations

import sys
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

__all__ = ["SymbolicGrid", "symbolic_minigrid"]


def symbolic_minigrid(env: gymnasium.Env) -> gymnasium.Env:
    """``env`` with its symbolic grid as a ``MultiDiscrete`` if it is a MiniGrid env, else ``env``."""
    return SymbolicGrid(env) if _grid_space(env) is not None else env


class SymbolicGrid(gymnasium.ObservationWrapper):
    """The (view, view, 3) object/colour/state grid as ``MultiDiscrete([11, 6, 3] per cell)``."""

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        grid = _grid_space(env)
        if grid is None:
            raise ValueError(f"{env} does not observe a MiniGrid symbolic grid")
        from minigrid.core.constants import COLOR_TO_IDX, OBJECT_TO_IDX, STATE_TO_IDX

        sizes = np.array([len(OBJECT_TO_IDX), len(COLOR_TO_IDX), len(STATE_TO_IDX)])
        categories = spaces.MultiDiscrete(np.broadcast_to(sizes, grid.shape).copy())  # int64, as gymnasium's
        space = env.observation_space
        in_dict = isinstance(space, spaces.Dict)
        self.observation_space = spaces.Dict({**space.spaces, "image": categories}) if in_dict else categories

    def observation(self, observation: Any) -> Any:
        if isinstance(observation, dict):
            return {**observation, "image": observation["image"].astype(np.int64)}
        return observation.astype(np.int64)  # the same indices


def _grid_space(env: gymnasium.Env) -> spaces.Box | None:
    """The symbolic grid's space when ``env`` is a MiniGrid env that observes it, else None."""
    minigrid_env = sys.modules.get("minigrid.minigrid_env")  # never import minigrid for others
    if minigrid_env is None or not isinstance(env.unwrapped, minigrid_env.MiniGridEnv):
        return None
    space = env.observation_space
    grid = space.spaces.get("image") if isinstance(space, spaces.Dict) else space
    view = env.unwrapped.agent_view_size
    if isinstance(grid, spaces.Box) and grid.dtype == np.uint8 and grid.shape == (view, view, 3):
        return grid
    return None
