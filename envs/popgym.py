"""POPGym memory tasks, as a gymnasium ``SyncVectorEnv``."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.envs.registration import load_env_creator
from gymnasium.vector import SyncVectorEnv
from gymnasium.wrappers import FlattenObservation, TransformObservation

from envs.adapter import MadeEnv, check_creator_renders, resolve_options

__all__ = ["DEFAULTS", "make_popgym"]

DEFAULTS: dict[str, Any] = {"id": "RepeatPrevious", "difficulty": "Easy"}
DIFFICULTIES = ("Easy", "Medium", "Hard")


def make_popgym(cfg: Mapping[str, Any], num_envs: int, render_mode: str | None = None) -> MadeEnv:
    """Options: ``id`` (e.g. ``"RepeatPrevious"``), ``difficulty`` (Easy, Medium or Hard).

    Autoreset is ``NEXT_STEP`` (gymnasium's ``SyncVectorEnv`` default). Only some tasks can
    render (the CartPole and Pendulum ones); others raise if ``render_mode`` is set.
    """
    options = resolve_options(cfg, DEFAULTS, "popgym")
    try:
        import popgym  # noqa: F401  (registers the popgym-* ids with gymnasium)
    except ImportError as exc:
        raise ImportError("popgym is not installed: pip install -e .[popgym]") from exc
    task, difficulty = options["id"], options["difficulty"]
    if difficulty not in DIFFICULTIES:
        raise ValueError(f"popgym difficulty must be one of {DIFFICULTIES}, got {difficulty!r}")
    gym_id = f"popgym-{task}{difficulty}-v0"
    if gym_id not in gymnasium.registry:
        raise ValueError(f"unknown popgym id {task!r}; valid ids: {_popgym_tasks()}")
    name = f"popgym:{task}{difficulty}"
    entry_point = gymnasium.spec(gym_id).entry_point
    creator = load_env_creator(entry_point) if isinstance(entry_point, str) else entry_point
    check_creator_renders(creator, render_mode, name)
    env = SyncVectorEnv([partial(_make_flat, gym_id, render_mode)] * num_envs)
    return MadeEnv(env, name)


def _popgym_tasks() -> list[str]:
    suffix = f"{DIFFICULTIES[0]}-v0"
    return sorted(
        gym_id[len("popgym-") : -len(suffix)]
        for gym_id in gymnasium.registry
        if gym_id.startswith("popgym-") and gym_id.endswith(suffix)
    )


def _make_flat(gym_id: str, render_mode: str | None = None) -> gymnasium.Env:
    """One env whose Tuple/Dict observations are flattened for the agent."""
    # Only when set: most popgym constructors take no render_mode, not even None.
    env = gymnasium.make(gym_id, **({"render_mode": render_mode} if render_mode is not None else {}))
    space = env.observation_space
    if not isinstance(space, (spaces.Tuple, spaces.Dict)):
        return env
    nvec = _discrete_sizes(space)
    if nvec is None:
        return FlattenObservation(env)  # mixed leaves: one flat float Box (discrete one-hot)
    # All-discrete leaves stay indices, so the agent one-hot encodes each with its own size.
    return TransformObservation(
        env,
        lambda obs: np.asarray(_discrete_values(space, obs), dtype=np.int64),
        spaces.MultiDiscrete(nvec),
    )


def _discrete_sizes(space: spaces.Space) -> list[int] | None:
    """Sizes of the discrete leaves of a nested space in order, or None if a leaf is not."""
    if isinstance(space, spaces.Discrete):
        return [int(space.n)]
    if isinstance(space, spaces.MultiDiscrete):
        return [int(n) for n in space.nvec.ravel()]
    if isinstance(space, (spaces.Tuple, spaces.Dict)):
        children = space.spaces.values() if isinstance(space, spaces.Dict) else space.spaces
        sizes = [_discrete_sizes(sub) for sub in children]
        return None if any(s is None for s in sizes) else [n for s in sizes for n in s]
    return None


def _discrete_values(space: spaces.Space, obs: Any) -> list[int]:
    """Leaf values of ``obs`` in the order of :func:`_discrete_sizes`, shifted to start at 0."""
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        return list(np.ravel(np.asarray(obs) - space.start))
    if isinstance(space, spaces.Dict):
        return [v for key, sub in space.spaces.items() for v in _discrete_values(sub, obs[key])]
    return [v for sub, part in zip(space.spaces, obs, strict=True) for v in _discrete_values(sub, part)]
