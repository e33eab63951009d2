"""Control tasks with the velocities taken out of the observation: the standard memory POMDPs.

Without velocities the current observation no longer determines the state; the agent has to
infer velocities from the positions it saw before, so a memoryless policy does poorly.

| id | base env | kept (indices of the base observation) |
|---|---|---|
| ``CartPoleNoVel-v1`` | ``CartPole-v1`` | cart position, pole angle (0, 2) |
| ``PendulumNoVel-v1`` | ``Pendulum-v1`` | cos θ, sin θ (0, 1) |
| ``MountainCarContinuousNoVel-v0`` | ``MountainCarContinuous-v0`` | position (0) |
| ``HalfCheetahNoVel-v5`` | ``HalfCheetah-v5`` | the 8 joint positions (0-7); needs the mujoco extra |
| ``HopperNoVel-v5`` | ``Hopper-v5`` | the 5 joint positions (0-4); needs the mujoco extra |

The classic three are RecurrentPPO's benchmark (sb3-contrib; rl-baselines3-zoo's
``MaskVelocityWrapper``, which zeroes the velocities where this drops them, under the same ids,
which the zoo registers and sb3-contrib does not); the MuJoCo pair is
the position-only MuJoCo of the RTU paper (Elelimy et al. 2024, "Real-time recurrent
reinforcement learning"). Importing this module registers the ids with gymnasium.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces

__all__ = ["POSITIONS", "PositionsOnly", "make_without_velocity"]

# id -> (base id, indices of the base observation that are kept)
POSITIONS: dict[str, tuple[str, tuple[int, ...]]] = {
    "CartPoleNoVel-v1": ("CartPole-v1", (0, 2)),
    "PendulumNoVel-v1": ("Pendulum-v1", (0, 1)),
    "MountainCarContinuousNoVel-v0": ("MountainCarContinuous-v0", (0,)),
    "HalfCheetahNoVel-v5": ("HalfCheetah-v5", tuple(range(8))),
    "HopperNoVel-v5": ("Hopper-v5", tuple(range(5))),
}


class PositionsOnly(gymnasium.ObservationWrapper):
    """Keep only the entries ``keep`` of a 1-D Box observation (the positions), dropping the rest."""

    def __init__(self, env: gymnasium.Env, keep: Sequence[int]) -> None:
        super().__init__(env)
        space = env.observation_space
        if not isinstance(space, spaces.Box) or len(space.shape) != 1:
            raise ValueError(f"PositionsOnly needs a 1-D Box observation space, got {space}")
        self._keep = np.asarray(keep, dtype=np.int64)
        if self._keep.size == 0 or self._keep.min() < 0 or self._keep.max() >= space.shape[0]:
            raise ValueError(f"indices {list(keep)} do not fit an observation of size {space.shape[0]}")
        self.observation_space = spaces.Box(space.low[self._keep], space.high[self._keep], dtype=space.dtype)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return observation[self._keep]


def make_without_velocity(masked_id: str, **kwargs: Any) -> gymnasium.Env:
    """The base env of ``masked_id`` (a key of :data:`POSITIONS`) made with ``kwargs``, positions only."""
    if masked_id not in POSITIONS:
        raise ValueError(f"unknown velocity-masked env {masked_id!r}; valid ids: {', '.join(POSITIONS)}")
    base_id, keep = POSITIONS[masked_id]
    return PositionsOnly(gymnasium.make(base_id, **kwargs), keep)


for _id in POSITIONS:
    if _id not in gymnasium.registry:
        # The base env's own TimeLimit applies, so none is added here.
        gymnasium.register(id=_id, entry_point=f"{__name__}:make_without_velocity", kwargs={"masked_id": _id})
