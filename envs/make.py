"""The one factory: an ``env`` config in, a ready vector env out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gymnasium.vector import VectorEnv
from gymnasium.wrappers.vector import ClipReward, RecordEpisodeStatistics

from envs.adapter import EnvMaker
from envs.atari import make_atari
from envs.custom import make_gym
from envs.memory_chain import make_memory_chain
from envs.named import NamedVectorEnv
from envs.observations import agent_observations
from envs.popgym import make_popgym
from envs.procgen import make_procgen
from envs.recall import make_recall
from envs.spaces import check_spaces

__all__ = ["ENV_MAKERS", "make_vector_env"]

# name -> maker(cfg, num_envs, render_mode); each adapter documents its own config keys.
ENV_MAKERS: dict[str, EnvMaker] = {
    "recall": make_recall,
    "popgym": make_popgym,
    "atari": make_atari,
    "procgen": make_procgen,
    "gym": make_gym,
    "memory_chain": make_memory_chain,
}


def make_vector_env(
    cfg: Mapping[str, Any], num_envs: int, seed: int, render_mode: str | None = None
) -> NamedVectorEnv:
    """Build the vector env described by ``cfg`` (a dict or the Hydra ``env`` group).

    Args:
        cfg: ``name`` (one of ``ENV_MAKERS``) plus that env's options.
        num_envs: number of sub-envs B.
        seed: used by the first ``reset()`` that passes no seed, and seeds the action space.
        render_mode: None (no rendering, the fast default) or a mode the env supports, in
            practice ``"rgb_array"``: ``render()`` then returns a tuple of ``num_envs`` uint8
            frames (H, W, 3), what ``gymnasium.wrappers.vector.RecordVideo`` records. Atari
            then runs on a slower Python vector env (same observations and actions).

    Returns:
        A vector env whose observations are laid out for the agents (:mod:`envs.observations`:
        images channels-first, n-D Boxes flat, Dict/Tuple as one flat Dict), with
        ``metadata["autoreset_mode"]`` set, ``.env_name`` for logs, and finished episodes
        reported with raw (unclipped) returns in ``info["episode"]["r"]``, lengths in
        ``info["episode"]["l"]`` and the mask ``info["_episode"]`` of shape (B,).
    """
    name = cfg.get("name")
    if name not in ENV_MAKERS:
        raise ValueError(f"unknown env name {name!r}; valid names: {', '.join(ENV_MAKERS)}")
    if num_envs < 1:
        raise ValueError(f"num_envs must be >= 1, got {num_envs}")
    made = ENV_MAKERS[name](cfg, num_envs, render_mode=render_mode)
    try:
        env: VectorEnv = agent_observations(made.env, made.name)
        check_spaces(env, made.name)
    except ValueError:
        made.env.close()
        raise
    # Statistics before any reward transform, so logged returns stay raw.
    env = RecordEpisodeStatistics(env)
    if made.clip_rewards:
        env = ClipReward(env, min_reward=-1.0, max_reward=1.0)
    env = NamedVectorEnv(env, made.name, seed=seed)
    env.action_space.seed(seed)
    return env
