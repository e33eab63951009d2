"""Observations laid out the way the agents take them, once, in the env adapter.

What changes (everything else passes through, unwrapped, so existing checkpoints keep their shapes):

- uint8 images (H, W, C) become (C, H, W), as SB3's ``VecTransposeImage`` does it: a transposed
  view, whose memory is already the channels-last layout the image torsos compute in;
- n-D Boxes other than images, and n-D MultiDiscrete / MultiBinary, are flattened to 1-D;
- Dict and Tuple spaces (nested or not) become one flat ``Dict`` whose keys are the paths of the
  leaves (``"image"``, ``"0"``, ``"arm.pos"``), each leaf laid out as above. Leaves no encoder can
  take (``Text``, ``Graph``, minigrid's ``MissionSpace``, ...) are dropped with one warning that
  names them; the agent then encodes each key on its own and concatenates (SB3's CombinedExtractor).

The resulting ``single_observation_space`` is an honest gymnasium space: a 1-D Box, a (C, H, W)
uint8 Box, Discrete, 1-D MultiDiscrete / MultiBinary, or a one-level Dict of these, which SB3's
``MultiInputPolicy`` also takes. A space with nothing encodable is left as it is, for
:func:`envs.spaces.check_spaces` to refuse with its reason.
"""

from __future__ import annotations

import functools
import operator
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import VectorEnv, VectorWrapper
from gymnasium.vector.utils import batch_space

from envs.spaces import image_layout, observation_problem

__all__ = ["AgentObservations", "agent_observations", "agent_space"]

Transform = Callable[[Any], Any]  # batched observations (leading axis B) -> batched observations


class AgentObservations(VectorWrapper):
    """Apply ``transform`` to every batched observation; the spaces become the given ones.

    A ``SAME_STEP`` env's per-env ``info["final_obs"]`` (the last observation of an episode that
    ended on this step) is laid out the same way, since the learner bootstraps on it.
    """

    def __init__(self, env: VectorEnv, single_observation_space: spaces.Space, transform: Transform) -> None:
        super().__init__(env)
        self.single_observation_space = single_observation_space
        self.observation_space = batch_space(single_observation_space, env.num_envs)
        self._transform = transform

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        return self._transform(obs), info

    def step(self, actions: Any) -> tuple[Any, Any, Any, Any, dict[str, Any]]:
        obs, rewards, terminated, truncated, info = self.env.step(actions)
        if "final_obs" in info:
            finals = np.empty(len(info["final_obs"]), dtype=object)
            finals[:] = [None if o is None else self._one(o) for o in info["final_obs"]]
            info = {**info, "final_obs": finals}
        return self._transform(obs), rewards, terminated, truncated, info

    def _one(self, obs: Any) -> Any:
        """One env's observation (no batch axis) in the agents' layout."""
        batched = self._transform(_map(lambda x: np.asarray(x)[None], obs))
        return _map(lambda x: x[0], batched)


def agent_observations(env: VectorEnv, env_name: str) -> VectorEnv:
    """``env`` with its observations in the agents' layout: wrapped if anything changes, else as is.

    Warns once, naming them, if parts of a Dict/Tuple observation are dropped.
    """
    laid_out = agent_space(env.single_observation_space)
    if laid_out is None:
        return env
    space, transform, dropped = laid_out
    if dropped:
        warnings.warn(
            f"environment {env_name!r}: observation parts the agents cannot encode are dropped: "
            + ", ".join(dropped),
            stacklevel=2,
        )
    return AgentObservations(env, space, transform)


def agent_space(space: spaces.Space) -> tuple[spaces.Space, Transform, list[str]] | None:
    """The agents' layout of ``space``: (new space, batched transform, dropped parts), or None when
    ``space`` is already laid out that way or cannot be encoded at all (nothing to keep)."""
    if not isinstance(space, (spaces.Dict, spaces.Tuple)):
        leaf, transform = _lay_out_leaf(space)
        if transform is None or observation_problem(leaf):
            return None
        return leaf, transform, []
    kept: dict[str, tuple[tuple[Any, ...], spaces.Space, Transform | None]] = {}
    dropped: list[str] = []
    for path, sub in _leaves(space, ()):
        name = ".".join(map(str, path))
        leaf, transform = _lay_out_leaf(sub)
        if observation_problem(leaf):
            dropped.append(f"{name!r} ({type(sub).__name__})")
        else:
            kept[name] = (path, leaf, transform)
    unchanged = (
        isinstance(space, spaces.Dict)
        and not dropped
        and all(len(path) == 1 and transform is None for path, _, transform in kept.values())
    )
    if not kept or unchanged:
        return None
    new_space = spaces.Dict({name: leaf for name, (_, leaf, _) in kept.items()})

    def transform(obs: Any) -> dict[str, Any]:
        out = {}
        for name, (path, _, leaf_transform) in kept.items():
            value = functools.reduce(operator.getitem, path, obs)
            out[name] = value if leaf_transform is None else leaf_transform(value)
        return out

    return new_space, transform, dropped


def _leaves(space: spaces.Space, path: tuple[Any, ...]) -> Iterator[tuple[tuple[Any, ...], spaces.Space]]:
    """(path, leaf space) for every non-Dict, non-Tuple space inside ``space``, in order."""
    if isinstance(space, spaces.Dict):
        for key, sub in space.spaces.items():
            yield from _leaves(sub, (*path, key))
    elif isinstance(space, spaces.Tuple):
        for index, sub in enumerate(space.spaces):
            yield from _leaves(sub, (*path, index))
    else:
        yield path, space


def _map(fn: Callable[[Any], Any], obs: Any) -> Any:
    """``fn`` on every leaf of a (nested) dict or tuple observation."""
    if isinstance(obs, dict):
        return {key: _map(fn, value) for key, value in obs.items()}
    if isinstance(obs, tuple):
        return tuple(_map(fn, value) for value in obs)
    return fn(obs)


def _flat(batch: np.ndarray) -> np.ndarray:
    """(B, ...) -> (B, prod(...))."""
    batch = np.asarray(batch)
    return batch.reshape(batch.shape[0], -1)


def _channels_first(batch: np.ndarray) -> np.ndarray:
    """(B, H, W, C) -> (B, C, H, W), a view (no copy)."""
    return np.transpose(batch, (0, 3, 1, 2))


def _lay_out_leaf(space: spaces.Space) -> tuple[spaces.Space, Transform | None]:
    """One leaf in the agents' layout, with the transform of its batches (None: unchanged)."""
    if isinstance(space, spaces.Box):
        layout = image_layout(space)
        if layout == "HWC":
            low, high = (np.transpose(bound, (2, 0, 1)) for bound in (space.low, space.high))
            return spaces.Box(low, high, dtype=space.dtype), _channels_first
        if layout is None and len(space.shape) != 1 and not _is_ambiguous_image(space):
            return spaces.Box(space.low.reshape(-1), space.high.reshape(-1), dtype=space.dtype), _flat
    elif isinstance(space, spaces.MultiDiscrete) and space.nvec.ndim != 1:
        flat = spaces.MultiDiscrete(space.nvec.reshape(-1), dtype=space.dtype, start=space.start.reshape(-1))
        return flat, _flat
    elif isinstance(space, spaces.MultiBinary) and len(space.shape) != 1:
        return spaces.MultiBinary(int(np.prod(space.shape))), _flat
    return space, None


def _is_ambiguous_image(space: spaces.Box) -> bool:
    """A 3-D uint8 Box whose channel axis cannot be told: refused, never flattened into a vector."""
    return space.dtype == np.uint8 and len(space.shape) == 3
