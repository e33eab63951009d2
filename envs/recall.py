"""Delayed recall: see a cue, wait ``delay`` steps, then name the cue.

The controlled test of truncation bias: when ``delay`` exceeds the truncation window, TBPTT
cannot carry credit from the query back to the cue, while RTRL can.

Timeline of one episode (length ``delay + 2``)::

    t = 0            cue shown        action ignored, reward 0
    t = 1..delay     blank            action ignored, reward 0
                     (a distractor with ``distractors=True``)
    t = delay + 1    query            reward 1 if action == cue else 0, terminated

Observation, float32 of size ``num_cues + 2``: ``[cue one-hot, is_query, is_delay]``, so the
observation alone tells which phase the episode is in.

**Recall among distractors** (``distractors=True``): every delay step shows a random cue in the
same one-hot slots, with ``is_delay`` set; only the first step's cue (``is_delay`` clear) counts.
Holding the most recent cue is then wrong (the last one seen is a distractor, right with chance
1/num_cues only), so the agent must learn to *write* its memory at the cue step and to keep it
shut at every later step. That write is decided ``delay + 1`` steps before the query's reward:
with ``delay + 1 > M`` no chunk of TBPTT at span M holds both, so truncation gives the write no
gradient, while exact RTRL's carried sensitivity does. (Without distractors a core that merely
keeps its state through blank steps, a habit learned from short spans, already holds the cue,
which is why TBPTT can still get there on plain recall, slowly.)

``render_mode="rgb_array"`` draws each step as a 64x64 picture: a bar in the cue's colour
while the cue is shown, nothing while waiting (a half-bright bar in a distractor's colour),
a white bar at the query, and a grey strip at the bottom that fills up as the query nears.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.adapter import MadeEnv, check_render_mode, resolve_options

__all__ = ["DEFAULTS", "ENV_ID", "DelayedRecallEnv", "DelayedRecallVectorEnv", "make_recall"]

ENV_ID = "rtrl/DelayedRecall-v0"
DEFAULTS: dict[str, Any] = {"delay": 8, "num_cues": 4, "distractors": False}
RENDER_SIZE = 64  # rendered frames are (RENDER_SIZE, RENDER_SIZE, 3) uint8
_RENDER_METADATA: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 4}


class _RecallBatch:
    """Episode state and rules for a batch of episodes; no autoreset, no gymnasium API.

    Shared by the single and the vector env so the task is written once.
    """

    def __init__(self, size: int, delay: int, num_cues: int, distractors: bool = False) -> None:
        if int(delay) != delay or delay < 0:
            raise ValueError(f"delay must be an integer >= 0, got {delay!r}")
        if int(num_cues) != num_cues or num_cues < 1:
            raise ValueError(f"num_cues must be an integer >= 1, got {num_cues!r}")
        if not isinstance(distractors, (bool, np.bool_)):
            raise ValueError(f"distractors must be true or false, got {distractors!r}")
        self.delay, self.num_cues, self.distractors = int(delay), int(num_cues), bool(distractors)
        self.cue = np.zeros(size, dtype=np.int64)
        # The cue (column 0) and the cues shown at t = 1..delay (distractors, or -1: blank).
        self.shown = np.full((size, self.delay + 1), -1, dtype=np.int64)
        self.t = np.zeros(size, dtype=np.int64)
        self.rows = np.arange(size)
        self.observation_space = spaces.Box(0.0, 1.0, (self.num_cues + 2,), np.float32)
        self.action_space = spaces.Discrete(self.num_cues)
        # One fully saturated colour per cue, hues evenly spaced from red.
        rgb = [colorsys.hsv_to_rgb(k / self.num_cues, 1.0, 1.0) for k in range(self.num_cues)]
        self.colours = (np.array(rgb) * 255).round().astype(np.uint8)  # (num_cues, 3)

    def start(self, rng: np.random.Generator, mask: np.ndarray | None = None) -> None:
        """Begin new episodes in the sub-envs selected by ``mask`` (all if None)."""
        index = self.rows if mask is None else self.rows[mask]
        self.cue[index] = rng.integers(self.num_cues, size=len(index))
        self.shown[index, 0] = self.cue[index]
        if self.distractors:  # drawn only when asked for, so the default task's stream is unchanged
            self.shown[index, 1:] = rng.integers(self.num_cues, size=(len(index), self.delay))
        self.t[index] = 0

    def _shown_now(self) -> np.ndarray:
        """The cue shown at the current step per row, -1 for none (blank, query, ended)."""
        in_window = self.t <= self.delay
        now = np.full(len(self.t), -1, dtype=np.int64)
        now[in_window] = self.shown[self.rows[in_window], self.t[in_window]]
        return now

    def observe(self) -> np.ndarray:
        """Observations, shape (size, num_cues + 2); all zeros once an episode has ended."""
        obs = np.zeros((len(self.t), self.num_cues + 2), dtype=np.float32)
        now = self._shown_now()
        shown = now >= 0
        obs[shown, now[shown]] = 1.0
        obs[self.t == self.delay + 1, self.num_cues] = 1.0
        obs[(self.t >= 1) & (self.t <= self.delay), self.num_cues + 1] = 1.0
        return obs

    def frames(self) -> np.ndarray:
        """Pictures of the current step, uint8 (size, RENDER_SIZE, RENDER_SIZE, 3).

        Rows 8-47: the cue's colour at t = 0, white at the query, black while waiting (half
        the distractor's colour with distractors, and black once an episode has ended).
        Bottom 8 rows: a grey bar, t / (delay + 1) of the width.
        """
        size = RENDER_SIZE
        bar = np.zeros((len(self.t), 3), dtype=np.uint8)
        now = self._shown_now()
        shown = now >= 0
        bar[shown] = self.colours[now[shown]]
        bar[shown & (self.t > 0)] //= 2  # distractors
        bar[self.t == self.delay + 1] = 255
        images = np.zeros((len(self.t), size, size, 3), dtype=np.uint8)
        images[:, 8:48] = bar[:, None, None, :]
        filled = np.minimum(self.t, self.delay + 1) * size // (self.delay + 1)
        progress = np.arange(size)[None, :] < filled[:, None]  # (n, size)
        images[:, size - 8 :] = np.where(progress[:, None, :, None], 128, 0).astype(np.uint8)
        return images

    def advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Apply actions of shape (size,); returns float32 rewards and bool terminations."""
        query = self.t == self.delay + 1
        rewards = (query & (actions == self.cue)).astype(np.float32)
        self.t += 1
        return rewards, query


class DelayedRecallEnv(gymnasium.Env):
    """Single-episode view of the task, for the env checker and ``gymnasium.make``."""

    metadata: ClassVar[dict[str, Any]] = dict(_RENDER_METADATA)

    def __init__(
        self,
        delay: int = DEFAULTS["delay"],
        num_cues: int = DEFAULTS["num_cues"],
        distractors: bool = DEFAULTS["distractors"],
        render_mode: str | None = None,
    ):
        check_render_mode(render_mode, self.metadata["render_modes"], "recall")
        self._batch = _RecallBatch(1, delay, num_cues, distractors)
        self.observation_space = self._batch.observation_space
        self.action_space = self._batch.action_space
        self.render_mode = render_mode

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        super().reset(seed=seed)
        self._batch.start(self.np_random)
        return self._batch.observe()[0], {}

    def step(self, action: int) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        rewards, terminated = self._batch.advance(np.asarray([action]))
        return self._batch.observe()[0], float(rewards[0]), bool(terminated[0]), False, {}

    def render(self) -> np.ndarray | None:
        """With ``render_mode="rgb_array"``: the current step, uint8 (64, 64, 3); else None."""
        if self.render_mode is None:
            return None
        return self._batch.frames()[0]


class DelayedRecallVectorEnv(VectorEnv):
    """Natively batched numpy version, the fast default training task.

    Autoreset is ``SAME_STEP``: the step that ends an episode already returns the next cue.
    Episodes only terminate, never truncate, so no ``final_obs`` is reported (a terminal
    observation is never bootstrapped from).
    """

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP, **_RENDER_METADATA}

    def __init__(
        self,
        num_envs: int,
        delay: int = DEFAULTS["delay"],
        num_cues: int = DEFAULTS["num_cues"],
        distractors: bool = DEFAULTS["distractors"],
        render_mode: str | None = None,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"], "recall")
        self.num_envs = num_envs
        self.render_mode = render_mode
        self._batch = _RecallBatch(num_envs, delay, num_cues, distractors)
        self.single_observation_space = self._batch.observation_space
        self.single_action_space = self._batch.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Returns obs of shape (num_envs, num_cues + 2) and an empty info dict."""
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._batch.start(self.np_random)
        return self._batch.observe(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Actions of shape (num_envs,); rewards (num_envs,) float32, flags (num_envs,) bool."""
        rewards, terminated = self._batch.advance(np.asarray(actions))
        if terminated.any():
            self._batch.start(self.np_random, terminated)
        return self._batch.observe(), rewards, terminated, np.zeros_like(terminated), {}

    def render(self) -> tuple[np.ndarray, ...] | None:
        """With ``render_mode="rgb_array"``: one uint8 (64, 64, 3) frame per sub-env; else None."""
        if self.render_mode is None:
            return None
        return tuple(self._batch.frames())


def make_recall(cfg: Mapping[str, Any], num_envs: int, render_mode: str | None = None) -> MadeEnv:
    """Options: ``delay`` (int, default 8), ``num_cues`` (int, default 4), ``distractors`` (bool,
    default false: blank delay steps)."""
    options = resolve_options(cfg, DEFAULTS, "recall")
    env = DelayedRecallVectorEnv(num_envs, **options, render_mode=render_mode)
    suffix = "-distractors" if options["distractors"] else ""
    return MadeEnv(env, f"recall:delay{options['delay']}-cues{options['num_cues']}{suffix}")
