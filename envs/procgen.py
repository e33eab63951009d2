"""Procgen through its natively vectorised gym3 env, adapted to a gymnasium ``VectorEnv``.

gym3 semantics: after ``act``, ``observe()`` returns ``(reward, obs, first)`` where ``first``
marks an obs that starts a new episode, i.e. the previous one ended on this step and the
env already reset. That is gymnasium's ``SAME_STEP`` autoreset, with no final observation.

Procgen reports no timeout flag, so the adapter counts each episode's steps: an episode that
ends on its game's step limit (:data:`STEP_LIMITS`) without completing the level is reported
as ``truncated``, every other end as ``terminated``. gym3 gives no final observation, so the
learner bootstraps a truncated episode from the value of its last observation seen. gym3 envs
cannot be reset either, so ``reset()`` builds a fresh one seeded from the vector env's RNG.

``render_mode="rgb_array"`` asks procgen for a 512x512 rendering of each sub-env alongside the
64x64 observations; ``render()`` returns those frames.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.adapter import MadeEnv, check_render_mode, resolve_options

__all__ = ["DEFAULTS", "MEMORY_GAMES", "STEP_LIMITS", "ProcgenVectorEnv", "make_procgen", "step_limit"]

DEFAULTS: dict[str, Any] = {
    "game": "maze",
    "distribution_mode": "memory",
    "num_levels": 0,
    "start_level": 0,
}
DISTRIBUTION_MODES = ("easy", "hard", "memory")
MEMORY_GAMES = ("caveflyer", "dodgeball", "heist", "jumper", "maze", "miner")
_NUM_ACTIONS = 15  # procgen's shared set of button combos, the same for every game
#: Episode step limits that differ from procgen's default of 1000 (key: game, or game-mode).
#: Measured with random play, 64 envs x 3100 steps per game and mode: many episodes stop at
#: exactly this length without completing the level (1000 for caveflyer, climber, coinrun,
#: dodgeball, heist, jumper, miner and ninja). bigfish, bossfight, chaser, fruitbot, plunder and
#: starpilot never ran that long under random play (longest 180-838 steps): default assumed.
STEP_LIMITS: dict[str, int] = {"leaper": 500, "maze": 500, "jumper-memory": 2000}
DEFAULT_STEP_LIMIT = 1000


def step_limit(game: str, distribution_mode: str) -> int:
    """The step at which procgen ends an episode of ``game`` in ``distribution_mode``."""
    return STEP_LIMITS.get(f"{game}-{distribution_mode}", STEP_LIMITS.get(game, DEFAULT_STEP_LIMIT))


class ProcgenVectorEnv(VectorEnv):
    """Obs uint8 (num_envs, 3, 64, 64); actions Discrete(15); rewards float32 (num_envs,)."""

    metadata: ClassVar[dict[str, Any]] = {
        "autoreset_mode": AutoresetMode.SAME_STEP,
        "render_modes": ["rgb_array"],
        "render_fps": 15,  # procgen's own video frame rate
    }

    def __init__(
        self,
        num_envs: int,
        game: str,
        distribution_mode: str,
        num_levels: int = 0,
        start_level: int = 0,
        render_mode: str | None = None,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"], f"procgen:{game}")
        from procgen import ProcgenGym3Env

        self._gym3_cls = ProcgenGym3Env
        self._gym3_kwargs = {
            "num": num_envs,
            "env_name": game,
            "distribution_mode": distribution_mode,
            "num_levels": num_levels,
            "start_level": start_level,
        }
        if render_mode is not None:
            self._gym3_kwargs["render_mode"] = render_mode  # puts a 512x512 "rgb" in get_info()
        self._gym3 = None
        self._limit = step_limit(game, distribution_mode)
        self._steps = np.zeros(num_envs, np.int64)  # steps into each sub-env's episode
        self.num_envs = num_envs
        self.render_mode = render_mode
        self.single_observation_space = spaces.Box(0, 255, (3, 64, 64), np.uint8)
        self.single_action_space = spaces.Discrete(_NUM_ACTIONS)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self.close_extras()
        rand_seed = int(self.np_random.integers(2**31 - 1))
        self._gym3 = self._gym3_cls(**self._gym3_kwargs, rand_seed=rand_seed)
        _, obs, _ = self._gym3.observe()
        self._steps[:] = 0
        return _channels_first(obs["rgb"]), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        if self._gym3 is None:
            raise RuntimeError("call reset() before step()")
        self._gym3.act(np.asarray(actions))
        rewards, obs, first = self._gym3.observe()
        complete = np.array([info["prev_level_complete"] for info in self._gym3.get_info()])
        ended = first.astype(bool)  # a copy: gym3 may reuse its buffers
        self._steps += 1
        truncated = ended & (self._steps >= self._limit) & ~complete.astype(bool)
        self._steps[ended] = 0
        info = {"level_complete": complete.astype(bool) & ended, "_level_complete": ended}
        return _channels_first(obs["rgb"]), rewards.astype(np.float32), ended & ~truncated, truncated, info

    def render(self) -> tuple[np.ndarray, ...] | None:
        """With ``render_mode="rgb_array"``: one uint8 (512, 512, 3) frame per sub-env; else None."""
        if self.render_mode is None:
            return None
        if self._gym3 is None:
            raise RuntimeError("call reset() before render()")
        return tuple(np.array(info["rgb"]) for info in self._gym3.get_info())  # copies

    def close_extras(self, **kwargs: Any) -> None:
        if self._gym3 is not None:
            self._gym3.close()
            self._gym3 = None


def _channels_first(rgb: np.ndarray) -> np.ndarray:
    """(B, 64, 64, 3) -> contiguous (B, 3, 64, 64)."""
    return np.ascontiguousarray(rgb.transpose(0, 3, 1, 2))


def make_procgen(cfg: Mapping[str, Any], num_envs: int, render_mode: str | None = None) -> MadeEnv:
    """Options: ``game``, ``distribution_mode`` (easy, hard, memory), ``num_levels``
    (0 = unlimited), ``start_level``. Autoreset is ``SAME_STEP``."""
    options = resolve_options(cfg, DEFAULTS, "procgen")
    try:
        from procgen.env import ENV_NAMES
    except ImportError as exc:
        raise ImportError("procgen is not installed: pip install -e .[procgen]") from exc
    game, mode = options["game"], options["distribution_mode"]
    if game not in ENV_NAMES:
        raise ValueError(f"unknown procgen game {game!r}; valid games: {', '.join(ENV_NAMES)}")
    if mode not in DISTRIBUTION_MODES:
        raise ValueError(f"procgen distribution_mode must be one of {DISTRIBUTION_MODES}")
    if mode == "memory" and game not in MEMORY_GAMES:
        raise ValueError(f"procgen game {game!r} has no memory mode; memory games: {', '.join(MEMORY_GAMES)}")
    env = ProcgenVectorEnv(num_envs, **options, render_mode=render_mode)
    return MadeEnv(env, f"procgen:{game}-{mode}")
