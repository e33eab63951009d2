"""Atari through the ALE's C++ vectoriser (``ale_py.vector_env.AtariVectorEnv``).

Preprocessing happens in C++: 84x84 greyscale, max-pool over the last two skipped frames,
``frameskip``, random no-op starts, FIRE on reset, frame stacking. Observations are uint8
(num_envs, frame_stack, 84, 84). The ALE's own reward clipping is switched off because it
happens before any Python wrapper could see raw rewards; :func:`envs.make_vector_env` clips
after recording episode statistics instead.

``repeat_action_probability`` defaults to 0.0 (no sticky actions, the classic DQN/PPO
protocol); set 0.25 to match the ALE v5 protocol (Machado et al., 2018).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gymnasium.vector import AutoresetMode

from envs.adapter import MadeEnv, resolve_options

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


def make_atari(cfg: Mapping[str, Any], num_envs: int) -> MadeEnv:
    """Options: see ``DEFAULTS``; ``game`` is a snake_case ROM name such as ``"ms_pacman"``.

    Autoreset is ``NEXT_STEP``; episodes truncate after 108,000 frames (30 minutes of play).
    """
    options = resolve_options(cfg, DEFAULTS, "atari")
    try:
        from ale_py import roms
        from ale_py.vector_env import AtariVectorEnv
    except ImportError as exc:
        raise ImportError("ale-py is not installed: pip install -e .[atari]") from exc
    game = options["game"]
    valid_games = roms.get_all_rom_ids()
    if game not in valid_games:
        raise ValueError(f"unknown atari game {game!r}; valid games: {', '.join(valid_games)}")
    env = AtariVectorEnv(
        game,
        num_envs,
        stack_num=options["frame_stack"],
        frameskip=options["frameskip"],
        noop_max=options["noop_max"],
        episodic_life=options["episodic_life"],
        repeat_action_probability=options["repeat_action_probability"],
        reward_clipping=False,
        use_fire_reset=True,
        autoreset_mode=AutoresetMode.NEXT_STEP,
    )
    return MadeEnv(env, f"atari:{game}", clip_rewards=bool(options["clip_rewards"]))
