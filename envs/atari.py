"""Atari through the ALE's C++ vectoriser (``ale_py.vector_env.AtariVectorEnv``).

Preprocessing happens in C++: 84x84 greyscale, max-pool over the last two skipped frames,
``frameskip``, random no-op starts, FIRE on reset, frame stacking. Observations are uint8
(num_envs, frame_stack, 84, 84). The ALE's own reward clipping is switched off because it
happens before any Python wrapper could see raw rewards; :func:`envs.make_vector_env` clips
after recording episode statistics instead.

The C++ vectoriser cannot render. With a ``render_mode`` (for video), the same preprocessing
runs in Python instead: a ``SyncVectorEnv`` of single ALE envs under gymnasium's
``AtariPreprocessing`` and ``FrameStackObservation``, with the same observations, action
space and ``NEXT_STEP`` autoreset, and ``render()`` giving the full-colour 210x160 screens.
It is slower, so training never uses it.

``repeat_action_probability`` defaults to 0.0 (no sticky actions, the classic DQN/PPO
protocol); set 0.25 to match the ALE v5 protocol (Machado et al., 2018).
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import Any

import gymnasium
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorEnv
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation

from envs.adapter import MadeEnv, check_render_mode, resolve_options

__all__ = ["DEFAULTS", "make_atari"]

DEFAULTS: dict[str, Any] = {
    "game": "breakout",
    "frame_stack": 4,
    "noop_max": 30,
    "frameskip": 4,
    "episodic_life": False,
    "repeat_action_probability": 0.0,
    "clip_rewards": True,
}
SCREEN_SIZE = 84
MAX_FRAMES_PER_EPISODE = 108_000  # 30 minutes of play at 60 frames per second


def make_atari(cfg: Mapping[str, Any], num_envs: int, render_mode: str | None = None) -> MadeEnv:
    """Options: see ``DEFAULTS``; ``game`` is a snake_case ROM name such as ``"ms_pacman"``.

    Autoreset is ``NEXT_STEP``; episodes truncate after 108,000 frames (30 minutes of play).
    With ``render_mode`` set, a slower Python vector env that can render is built instead.
    """
    options = resolve_options(cfg, DEFAULTS, "atari")
    try:
        from ale_py import roms
    except ImportError as exc:
        raise ImportError("ale-py is not installed: pip install -e .[atari]") from exc
    game = options["game"]
    valid_games = roms.get_all_rom_ids()
    if game not in valid_games:
        raise ValueError(f"unknown atari game {game!r}; valid games: {', '.join(valid_games)}")
    name = f"atari:{game}"
    if render_mode is None:
        env = _native_vector_env(options, num_envs)
    else:
        env = _python_vector_env(options, num_envs, render_mode, name)
    return MadeEnv(env, name, clip_rewards=bool(options["clip_rewards"]))


def _native_vector_env(options: Mapping[str, Any], num_envs: int) -> VectorEnv:
    """The fast C++ vector env; it cannot render."""
    from ale_py.vector_env import AtariVectorEnv

    return AtariVectorEnv(
        options["game"],
        num_envs,
        stack_num=options["frame_stack"],
        frameskip=options["frameskip"],
        noop_max=options["noop_max"],
        episodic_life=options["episodic_life"],
        repeat_action_probability=options["repeat_action_probability"],
        img_height=SCREEN_SIZE,
        img_width=SCREEN_SIZE,
        max_num_frames_per_episode=MAX_FRAMES_PER_EPISODE,
        reward_clipping=False,
        use_fire_reset=True,
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )


def _python_vector_env(options: Mapping[str, Any], num_envs: int, render_mode: str, name: str) -> VectorEnv:
    """The same env as :func:`_native_vector_env`, built from single Python envs that render."""
    from ale_py.env import AtariEnv

    check_render_mode(render_mode, AtariEnv.metadata["render_modes"], name)
    return SyncVectorEnv(
        [partial(_single_env, dict(options), render_mode)] * num_envs,
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )


def _single_env(options: Mapping[str, Any], render_mode: str) -> gymnasium.Env:
    """One ALE env preprocessed like the C++ vectoriser: obs uint8 (frame_stack, 84, 84)."""
    import ale_py
    from ale_py.registration import rom_id_to_name

    gymnasium.register_envs(ale_py)
    env = gymnasium.make(
        f"ALE/{rom_id_to_name(options['game'])}-v5",
        frameskip=1,  # AtariPreprocessing skips frames (and max-pools the last two)
        repeat_action_probability=options["repeat_action_probability"],
        max_num_frames_per_episode=MAX_FRAMES_PER_EPISODE,
        render_mode=render_mode,
    )
    env = AtariPreprocessing(
        env,
        noop_max=options["noop_max"],
        frame_skip=options["frameskip"],
        screen_size=SCREEN_SIZE,
        terminal_on_life_loss=options["episodic_life"],
        grayscale_obs=True,
        scale_obs=False,
    )
    env = _FireOnReset(env)
    # The C++ stack starts zero-padded, not filled with copies of the first frame.
    return FrameStackObservation(env, options["frame_stack"], padding_type="zero")


class _FireOnReset(gymnasium.Wrapper):
    """Press FIRE once after every reset, as the C++ ``use_fire_reset`` does, if the game has it.

    Games such as Breakout wait for FIRE before play starts.
    """

    def __init__(self, env: gymnasium.Env) -> None:
        super().__init__(env)
        meanings = env.unwrapped.get_action_meanings()
        self._fire = meanings.index("FIRE") if "FIRE" in meanings else None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        obs, info = self.env.reset(seed=seed, options=options)
        if self._fire is not None:
            obs, _, terminated, truncated, info = self.env.step(self._fire)
            if terminated or truncated:
                obs, info = self.env.reset(options=options)
        return obs, info
