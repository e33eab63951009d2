"""The contract every environment adapter follows: options in, :class:`MadeEnv` out."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from gymnasium.vector import VectorEnv
from omegaconf import DictConfig, OmegaConf

__all__ = ["MadeEnv", "resolve_options"]


class MadeEnv(NamedTuple):
    """What an adapter hands back to :func:`envs.make.make_vector_env`.

    Attributes:
        env: the bare vector env, rewards unclipped and no statistics wrapper yet.
        name: readable name for logs, e.g. ``"atari:breakout"``.
        clip_rewards: clip training rewards to [-1, 1] after episode statistics are recorded.
    """

    env: VectorEnv
    name: str
    clip_rewards: bool = False


def resolve_options(cfg: Mapping[str, Any], defaults: Mapping[str, Any], family: str) -> dict:
    """Merge ``cfg`` over ``defaults``; ``name`` is dropped and unknown keys raise.

    Unknown keys raise rather than being ignored, so a typo such as ``dely: 32`` cannot
    silently train on the default task.
    """
    if isinstance(cfg, DictConfig):
        cfg = OmegaConf.to_container(cfg, resolve=True)
    options = {key: value for key, value in cfg.items() if key != "name"}
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for env {family!r}; valid options: {sorted(defaults)}")
    return {**defaults, **options}
