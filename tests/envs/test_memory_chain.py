"""MemoryChain: agrees with bsuite's memory_chain step for step; returns are +-1; seeding."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from envs import make_vector_env
from envs.memory_chain import ENV_ID, MemoryChainEnv


@pytest.mark.parametrize(("length", "bits"), [(1, 1), (2, 1), (5, 3), (16, 2), (128, 1)])
def test_agrees_with_bsuite_step_for_step(length, bits):
    """Same context and query per episode (copied from bsuite's env), random actions: the same
    observations, rewards and ends at every step over several episodes."""
    memory_chain = pytest.importorskip("bsuite.environments.memory_chain")
    ref = memory_chain.MemoryChain(memory_length=length, num_bits=bits, seed=3)
    ours = MemoryChainEnv(memory_length=length, num_bits=bits)
    rng = np.random.default_rng(0)
    for _ in range(6):
        step = ref.reset()
        obs, _ = ours.reset(seed=int(rng.integers(1 << 30)))
        ours._batch.context[0], ours._batch.query[0] = ref._context, ref._query  # the same episode
        obs = ours._batch.observe()[0]
        np.testing.assert_array_equal(obs, step.observation[0])
        steps = 0
        while not step.last():
            action = int(rng.integers(2))
            step = ref.step(action)
            obs, reward, terminated, truncated, _ = ours.step(action)
            steps += 1
            np.testing.assert_array_equal(obs, step.observation[0])
            assert (reward, terminated, truncated) == (step.reward, step.last(), False)
        assert steps == length + 1


def test_returns_are_plus_or_minus_one_and_the_answer_is_the_queried_bit():
    env = make_vector_env({"name": "memory_chain", "memory_length": 3, "num_bits": 2}, num_envs=4, seed=0)
    assert env.env_name == "memory_chain:length3-bits2"
    obs, _ = env.reset()
    context = obs[:, 2:].copy()  # shown at the first step
    returns = []
    for t in range(4 * 8):
        if t % 4 == 3:  # the last step: the query is in this observation
            action = (context[np.arange(4), obs[:, 1].astype(int)] > 0).astype(np.int64)
            if t // 4 % 2:  # every other episode: the wrong answer
                action = 1 - action
        else:
            action = env.action_space.sample()
        obs, _, terminated, truncated, info = env.step(action)
        assert not truncated.any()
        assert terminated.all() == (t % 4 == 3) and terminated.any() == (t % 4 == 3)
        if terminated.any():
            returns.append(info["episode"]["r"].copy())
            context = obs[:, 2:].copy()  # SAME_STEP: the next episode's first observation
            assert (np.abs(context) == 1).all()
    np.testing.assert_array_equal(np.concatenate(returns[0::2]), 1.0)
    np.testing.assert_array_equal(np.concatenate(returns[1::2]), -1.0)


def test_seeded_episodes_repeat_and_bits_are_fair():
    def contexts(seed: int) -> np.ndarray:
        env = make_vector_env({"name": "memory_chain", "memory_length": 1}, num_envs=64, seed=seed)
        first, _ = env.reset()
        seen = [first[:, 2]]
        for _ in range(2 * 20):
            obs, _, terminated, _, _ = env.step(env.action_space.sample())
            if terminated.any():
                seen.append(obs[:, 2])
        return np.stack(seen)

    a = contexts(0)
    assert (a == contexts(0)).all() and not (a == contexts(1)).all()
    assert abs(a.mean()) < 0.1  # +-1 with equal chance (21 x 64 draws: std 0.027)


def test_registered_single_env_passes_the_checker_and_bad_options_raise():
    check_env(gymnasium.make(ENV_ID, memory_length=4).unwrapped, skip_render_check=True)
    with pytest.raises(ValueError, match="memory_length"):
        make_vector_env({"name": "memory_chain", "memory_length": 0}, num_envs=1, seed=0)
    with pytest.raises(ValueError, match="unknown option"):
        make_vector_env({"name": "memory_chain", "length": 4}, num_envs=1, seed=0)
