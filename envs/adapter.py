"""The contract every environment adapter follows: options in, :class:`MadeEnv` out."""

from __future__ import annotations

import inspect
import traceback
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple, Protocol

from gymnasium.vector import VectorEnv
from omegaconf import DictConfig, OmegaConf

__all__ = [
    "EnvMaker",
    "MadeEnv",
    "check_creator_renders",
    "check_render_mode",
    "describe_error",
    "resolve_options",
]


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


class EnvMaker(Protocol):
    """An adapter: the ``env`` config (``name`` plus options), B, and an optional render mode.

    With ``render_mode`` set (``"rgb_array"`` for video), the vector env's ``render()``
    returns a tuple of B frames, uint8 (H, W, 3), as gymnasium's vector ``RecordVideo`` needs.
    """

    def __call__(self, cfg: Mapping[str, Any], num_envs: int, render_mode: str | None = None) -> MadeEnv: ...


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


def check_render_mode(render_mode: str | None, supported: Iterable[str], what: str) -> None:
    """Raise ``ValueError`` naming ``what`` if ``render_mode`` is set but not in ``supported``."""
    supported = list(supported)
    if render_mode is not None and render_mode not in supported:
        raise ValueError(
            f"{what} cannot render with render_mode={render_mode!r}; supported render modes: "
            f"{supported if supported else 'none'}"
        )


def check_creator_renders(creator: Callable[..., Any], render_mode: str | None, what: str) -> None:
    """Fail before building if ``creator`` (an env class or factory) cannot take ``render_mode``.

    Checks that it accepts a ``render_mode`` keyword and, for a class, that the mode is listed
    in its ``metadata["render_modes"]``.
    """
    if render_mode is None:
        return
    try:
        parameters = inspect.signature(creator).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature: let construction decide
        parameters = None
    if parameters is not None and not any(
        p.name == "render_mode" or p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters
    ):
        label = getattr(creator, "__qualname__", repr(creator))
        raise ValueError(f"{what} cannot render: its constructor {label} takes no render_mode argument")
    metadata = getattr(creator, "metadata", None)
    if isinstance(metadata, Mapping):
        check_render_mode(render_mode, metadata.get("render_modes", []), what)


def describe_error(exc: BaseException) -> str:
    """``str(exc)``, or, when that is empty (a bare ``assert``), its type, repr and where it was raised.

    An env's own ``assert height % 2 == 1`` would otherwise reach the user as an empty reason.
    """
    text = str(exc)
    if text:
        return text
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno} in {frames[-1].name}" if frames else ""
    return f"{type(exc).__name__} with no message ({exc!r}){where}"
