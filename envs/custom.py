"""Any gymnasium env, named as gymnasium names them: ``Id``, ``module:Id`` or ``module:ClassName``.

Named ``custom`` rather than ``gym`` so the submodule never shadows the common
``import gymnasium as gym`` alias inside this package.
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

import gymnasium
from gymnasium.envs.registration import load_env_creator
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AsyncVectorEnv, SyncVectorEnv

import envs.masked  # noqa: F401  (registers the velocity-masked ids, e.g. CartPoleNoVel-v1)
from envs.adapter import MadeEnv, check_creator_renders, check_render_mode, describe_error, resolve_options
from envs.minigrid import symbolic_minigrid

__all__ = ["DEFAULTS", "make_gym"]

DEFAULTS: dict[str, Any] = {"id": "CartPole-v1", "kwargs": {}, "vectorization": "sync"}
_VECTORIZERS = {"sync": SyncVectorEnv, "async": AsyncVectorEnv}


def make_gym(cfg: Mapping[str, Any], num_envs: int, render_mode: str | None = None) -> MadeEnv:
    """Options: ``id`` (a registered id, ``module:Id`` or ``module:Class``), ``kwargs`` (constructor
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
    """A picklable zero-argument constructor, failing early with the id in the message. A MiniGrid
    env's symbolic grid is declared as categories (envs/minigrid.py).

    ``env_id`` is read the way gymnasium spells ids: a registered id (``CartPole-v1``), or
    ``module:Name``, which imports ``module`` and then takes ``Name`` as an attribute of it if it
    has one (an env class or factory, ``minigrid.envs:MemoryEnv``), else as the id the import
    registered (``minigrid:MiniGrid-MemoryS7-v0``, as ``gymnasium.make`` reads it).
    """
    what = f"gym env {env_id!r}"
    if render_mode is not None:
        kwargs = {**kwargs, "render_mode": render_mode}
    module_name, _, name = env_id.rpartition(":")
    if module_name:
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise ValueError(
                f"cannot import module {module_name!r} for gym env {env_id!r}: {describe_error(exc)}"
            ) from exc
        creator = getattr(module, name, None)
        if callable(creator):
            check_creator_renders(creator, render_mode, what)
            return partial(_built, partial(creator, **kwargs))
    try:
        entry_point = gymnasium.spec(name).entry_point
    except gymnasium.error.Error as exc:
        if module_name:
            raise ValueError(
                f"module {module_name!r} has no env class or factory {name!r}, and importing it "
                f"registered no env id {name!r} ({env_id!r}){_close_ids(name)}"
            ) from exc
        raise ValueError(
            f"unknown gym env id {env_id!r}: {describe_error(exc)}{_close_ids(env_id)}; an id that "
            f"a package registers needs that package imported first: spell it 'package:{env_id}'"
        ) from exc
    if isinstance(entry_point, str):
        check_creator_renders(load_env_creator(entry_point), render_mode, what)
    elif entry_point is not None:
        check_creator_renders(entry_point, render_mode, what)
    # The full ``module:Id``: gymnasium.make imports the module again in an async worker.
    return partial(_built, partial(gymnasium.make, env_id, **kwargs))


def _built(make: Callable[[], gymnasium.Env]) -> gymnasium.Env:
    return symbolic_minigrid(make())


def _close_ids(name: str) -> str:
    """``"; close registered ids: a, b"`` for the ids most like ``name`` (difflib), or ``""``."""
    close = difflib.get_close_matches(name, list(gymnasium.registry), n=5, cutoff=0.6)
    return f"; close registered ids: {', '.join(close)}" if close else ""


def _check(env_id: str, make_one: Callable[[], gymnasium.Env], render_mode: str | None) -> None:
    try:
        env = make_one()
    except Exception as exc:
        raise ValueError(f"gym env {env_id!r} could not be built: {describe_error(exc)}") from exc
    render_modes = env.metadata.get("render_modes", [])
    try:
        # The bare env: gymnasium's checker warns on wrapped ones and checks less.
        check_env(env.unwrapped, skip_render_check=True)
    except Exception as exc:
        raise ValueError(f"gym env {env_id!r} failed gymnasium's env checker: {describe_error(exc)}") from exc
    finally:
        env.close()
    # Catches what the constructor check cannot see, e.g. the env a factory function builds.
    check_render_mode(render_mode, render_modes, f"gym env {env_id!r}")
