"""bsuite's memory_chain (Osband et al. 2020), natively: see context bits, wait, answer a query.

Written to agree with ``bsuite.environments.memory_chain.MemoryChain`` (bsuite 0.3.6) step for
step (tests/envs/test_memory_chain.py checks it against bsuite when bsuite is installed), so users
need neither bsuite nor dm_env. With L = ``memory_length`` and n = ``num_bits``, an episode has
L + 1 steps; the observation, float32 of size n + 2, is ``[time, query, context]`` where

    time    = 1 − s / L                 s = the step counter bsuite shows (see below)
    query   = the index of the bit asked for, shown when s = L − 1 (always 0 when n = 1)
    context = 2 c − 1 ∈ {−1, +1}^n, shown when s = 0; zeros otherwise

bsuite builds each step's observation *before* advancing its counter, so the observations seen
before actions 1, 2, …, L + 1 are those of s = 0, 0, 1, …, L − 1: the context is shown twice, the
query right before the last action. Actions (2) are ignored until the last step, which pays +1 if
the action equals the queried context bit and −1 otherwise, and terminates. An episode's return
is therefore ±1: success rate = (mean return + 1) / 2, so a success threshold of 0.9 is a return
threshold of 0.8. Random play scores 0 (success 0.5).

Context bits are drawn Bernoulli(1/2) and the query uniformly, per episode, from the env's
generator (gymnasium's, not bsuite's RandomState: same distribution, different stream).
The vector env is natively batched with ``SAME_STEP`` autoreset, as the recall task; episodes only
terminate, so no final observation is ever bootstrapped from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import gymnasium
import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space

from envs.adapter import MadeEnv, check_render_mode, resolve_options

__all__ = ["DEFAULTS", "ENV_ID", "MemoryChainEnv", "MemoryChainVectorEnv", "make_memory_chain"]

ENV_ID = "rtrl/MemoryChain-v0"
DEFAULTS: dict[str, Any] = {"memory_length": 8, "num_bits": 1}


class _ChainBatch:
    """Episode state and rules for a batch of episodes; no autoreset, no gymnasium API."""

    def __init__(self, size: int, memory_length: int, num_bits: int) -> None:
        for key, value in (("memory_length", memory_length), ("num_bits", num_bits)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{key} must be an integer >= 1, got {value!r}")
        self.length, self.num_bits = int(memory_length), int(num_bits)
        self.context = np.zeros((size, self.num_bits), dtype=np.int64)
        self.query = np.zeros(size, dtype=np.int64)
        self.t = np.zeros(size, dtype=np.int64)  # bsuite's _timestep: steps taken this episode
        high = max(1.0, float(self.num_bits - 1))
        self.observation_space = spaces.Box(-1.0, high, (self.num_bits + 2,), np.float32)
        self.action_space = spaces.Discrete(2)

    def start(self, rng: np.random.Generator, mask: np.ndarray | None = None) -> None:
        """Begin new episodes in the rows selected by ``mask`` (all if None)."""
        rows = np.arange(len(self.t)) if mask is None else np.flatnonzero(mask)
        self.context[rows] = rng.integers(2, size=(len(rows), self.num_bits))
        self.query[rows] = rng.integers(self.num_bits, size=len(rows))
        self.t[rows] = 0

    def observe(self) -> np.ndarray:
        """bsuite's ``_get_observation`` for every row, (size, num_bits + 2)."""
        obs = np.zeros((len(self.t), self.num_bits + 2), dtype=np.float32)
        obs[:, 0] = 1 - self.t / self.length
        at_query = self.t == self.length - 1
        obs[at_query, 1] = self.query[at_query]
        at_start = self.t == 0
        obs[at_start, 2:] = 2 * self.context[at_start] - 1
        return obs

    def advance(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Apply actions (size,): the observations (built before the counter moves, as bsuite's),
        float32 rewards and bool terminations."""
        obs = self.observe()
        last = self.t == self.length
        right = actions == self.context[np.arange(len(self.t)), self.query]
        rewards = np.where(last, np.where(right, 1.0, -1.0), 0.0).astype(np.float32)
        self.t += 1
        return obs, rewards, last


class MemoryChainEnv(gymnasium.Env):
    """Single-episode view of the task, for the env checker, ``gymnasium.make`` and ``env=gym``."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(
        self,
        memory_length: int = DEFAULTS["memory_length"],
        num_bits: int = DEFAULTS["num_bits"],
        render_mode: str | None = None,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"], "memory_chain")
        self._batch = _ChainBatch(1, memory_length, num_bits)
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
        obs, rewards, terminated = self._batch.advance(np.asarray([action]))
        return obs[0], float(rewards[0]), bool(terminated[0]), False, {}


class MemoryChainVectorEnv(VectorEnv):
    """Natively batched version (``SAME_STEP`` autoreset): the step that ends an episode already
    returns the next episode's first observation."""

    metadata: ClassVar[dict[str, Any]] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}

    def __init__(
        self,
        num_envs: int,
        memory_length: int = DEFAULTS["memory_length"],
        num_bits: int = DEFAULTS["num_bits"],
        render_mode: str | None = None,
    ) -> None:
        check_render_mode(render_mode, self.metadata["render_modes"], "memory_chain")
        self.num_envs = num_envs
        self.render_mode = render_mode
        self._batch = _ChainBatch(num_envs, memory_length, num_bits)
        self.single_observation_space = self._batch.observation_space
        self.single_action_space = self._batch.action_space
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        if seed is not None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self._batch.start(self.np_random)
        return self._batch.observe(), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        obs, rewards, terminated = self._batch.advance(np.asarray(actions))
        if terminated.any():
            self._batch.start(self.np_random, terminated)
            obs[terminated] = self._batch.observe()[terminated]
        return obs, rewards, terminated, np.zeros_like(terminated), {}


def make_memory_chain(cfg: Mapping[str, Any], num_envs: int, render_mode: str | None = None) -> MadeEnv:
    """Options: ``memory_length`` (L >= 1, default 8; bsuite sweeps 1-100, the streaming suite
    4-128) and ``num_bits`` (context bits, default 1)."""
    options = resolve_options(cfg, DEFAULTS, "memory_chain")
    env = MemoryChainVectorEnv(num_envs, **options, render_mode=render_mode)
    return MadeEnv(env, f"memory_chain:length{options['memory_length']}-bits{options['num_bits']}")
