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
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

from envs.adapter import MadeEnv, check_creator_renders, check_render_mode, resolve_options

__all__ = ["DEFAULTS", "make_gym"]

DEFAULTS: dict[str, Any] = {"id": "CartPole-v1", "kwargs": {}, "vectorization": "sync"}
_VECTORIZERS = {"sync": SyncVectorEnv, "async": AsyncVectorEnv}


def make_gym(cfg: Mapping[str, Any], num_envs: int, render_mode: str | None = None) -> MadeEnv:
    """Options: ``id`` (registered id or ``module:Class``), ``kwargs`` (constructor
    arguments), ``vectorization`` (sync or async). Autoreset is ``NEXT_STEP``.

    gymnasium's env checker runs once on a single instance before vectorising.
    ``render_mode`` goes to each env's constructor; an env that cannot take it raises.
    """
    options = resolve_options(cfg, DEFAULTS, "gym")
    env_id, mode = options["id"], options["vectorization"]
    if mode not in _VECTORIZERS:
        raise ValueError(f"gym vectorization must be one of {list(_VECTORIZERS)}, got {mode!r}")
    make_one = _env_factory(env_id, dict(options["kwargs"] or {}), render_mode)
    _check(env_id, make_one, render_mode)
    env = _VECTORIZERS[mode]([make_one] * num_envs)
    return MadeEnv(env, f"gym:{env_id}")


def _env_factory(env_id: str, kwargs: dict[str, Any], render_mode: str | None) -> Callable[[], gymnasium.Env]:
    """A picklable zero-argument constructor, failing early with the id in the message."""
    what = f"gym env {env_id!r}"
    if render_mode is not None:
        kwargs = {**kwargs, "render_mode": render_mode}
    if ":" not in env_id:
        try:
            spec = gymnasium.spec(env_id)
        except gymnasium.error.Error as exc:
            raise ValueError(f"unknown gym env id {env_id!r}: {exc}") from exc
        if isinstance(spec.entry_point, str):
            check_creator_renders(load_env_creator(spec.entry_point), render_mode, what)
        elif spec.entry_point is not None:
            check_creator_renders(spec.entry_point, render_mode, what)
        return partial(gymnasium.make, env_id, **kwargs)
    module_name, _, class_name = env_id.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import module {module_name!r} for gym env {env_id!r}") from exc
    env_class = getattr(module, class_name, None)
    if not callable(env_class):
        raise ValueError(f"module {module_name!r} has no env class {class_name!r} ({env_id!r})")
    check_creator_renders(env_class, render_mode, what)
    return partial(env_class, **kwargs)


def _check(env_id: str, make_one: Callable[[], gymnasium.Env], render_mode: str | None) -> None:
    try:
        env = make_one()
    except Exception as exc:
        raise ValueError(f"gym env {env_id!r} could not be built: {exc}") from exc
    render_modes = env.metadata.get("render_modes", [])
    try:
        # The bare env: gymnasium's checker warns on wrapped ones and checks less.
        check_env(env.unwrapped, skip_render_check=True)
    except Exception as exc:
        raise ValueError(f"gym env {env_id!r} failed gymnasium's env checker: {exc}") from exc
    finally:
        env.close()
    # Catches what the constructor check cannot see, e.g. the env a factory function builds.
    check_render_mode(render_mode, render_modes, f"gym env {env_id!r}")
