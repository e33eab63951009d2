"""Any gymnasium env: a registered id or a ``package.module:ClassName`` entry point.

Named ``custom`` rather than ``gym`` so the submodule never shadows the common
``import gymnasium as gym`` alias inside this package.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import gymnasium
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

from envs.adapter import MadeEnv, resolve_options

__all__ = ["DEFAULTS", "make_gym"]

DEFAULTS: dict[str, Any] = {"id": "CartPole-v1", "kwargs": {}, "vectorization": "sync"}
_VECTORIZERS = {"sync": SyncVectorEnv, "async": AsyncVectorEnv}


def make_gym(cfg: Mapping[str, Any], num_envs: int) -> MadeEnv:
    """Options: ``id`` (registered id or ``module:Class``), ``kwargs`` (constructor
    arguments), ``vectorization`` (sync or async). Autoreset is ``NEXT_STEP``.

    gymnasium's env checker runs once on a single instance before vectorising.
    """
    options = resolve_options(cfg, DEFAULTS, "gym")
    env_id, mode = options["id"], options["vectorization"]
    if mode not in _VECTORIZERS:
        raise ValueError(f"gym vectorization must be one of {list(_VECTORIZERS)}, got {mode!r}")
    make_one = _env_factory(env_id, dict(options["kwargs"] or {}))
    _check(env_id, make_one)
    env = _VECTORIZERS[mode]([make_one] * num_envs)
    return MadeEnv(env, f"gym:{env_id}")


def _env_factory(env_id: str, kwargs: dict[str, Any]) -> Callable[[], gymnasium.Env]:
    """A picklable zero-argument constructor, failing early with the id in the message."""
    if ":" not in env_id:
        try:
            gymnasium.spec(env_id)
        except gymnasium.error.Error as exc:
            raise ValueError(f"unknown gym env id {env_id!r}: {exc}") from exc
        return partial(gymnasium.make, env_id, **kwargs)
    module_name, _, class_name = env_id.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} for gym env {env_id!r}") from exc
    env_class = getattr(module, class_name, None)
    if not callable(env_class):
        raise ValueError(f"module {module_name!r} has no env class {class_name!r} ({env_id!r})")
    return partial(env_class, **kwargs)


def _check(env_id: str, make_one: Callable[[], gymnasium.Env]) -> None:
    try:
        env = make_one()
    except Exception as exc:
        raise ValueError(f"gym env {env_id!r} could not be built: {exc}") from exc
    try:
        # The bare env: gymnasium's checker warns on wrapped ones and checks less.
        check_env(env.unwrapped, skip_render_check=True)
    except Exception as exc:
        raise ValueError(f"gym env {env_id!r} failed gymnasium's env checker: {exc}") from exc
    finally:
        env.close()
