"""The built-in delayed-recall task: exact rewards, lengths, observations and seeding."""

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from gymnasium.vector import AutoresetMode

from envs import make_vector_env
from envs.recall import ENV_ID, DelayedRecallEnv

NUM_CUES = 4


def _play(delay: int, answer_offset: int, num_envs: int = 3, steps: int = 200):
    """Scripted agent: remembers the cue and answers ``cue + answer_offset``."""
    cfg = {"name": "recall", "delay": delay, "num_cues": NUM_CUES}
    env = make_vector_env(cfg, num_envs=num_envs, seed=0)
    obs, _ = env.reset()
    memory = np.zeros(num_envs, dtype=np.int64)
    returns, lengths = [], []
    for _ in range(steps):
        shown = obs[:, :NUM_CUES].any(axis=1)
        memory[shown] = obs[shown, :NUM_CUES].argmax(axis=1)
        obs, _, _, _, info = env.step((memory + answer_offset) % NUM_CUES)
        if "_episode" in info:
            returns.extend(info["episode"]["r"][info["_episode"]])
            lengths.extend(info["episode"]["l"][info["_episode"]])
    env.close()
    return np.array(returns), np.array(lengths)


def test_env_checker_passes():
    check_env(DelayedRecallEnv(delay=3, num_cues=NUM_CUES), skip_render_check=True)
    check_env(gymnasium.make(ENV_ID, delay=0).unwrapped, skip_render_check=True)


@pytest.mark.parametrize("delay", [0, 2, 7])
def test_correct_answer_always_scores_one(delay):
    returns, lengths = _play(delay, answer_offset=0)
    assert len(returns) > 10
    assert np.all(returns == 1.0)
    assert np.all(lengths == delay + 2)


def test_wrong_answer_scores_zero():
    returns, _ = _play(delay=2, answer_offset=1)
    assert len(returns) > 10
    assert np.all(returns == 0.0)


def test_observation_marks_each_phase():
    delay = 3
    env = DelayedRecallEnv(delay=delay, num_cues=NUM_CUES)
    obs, _ = env.reset(seed=1)
    cue = int(obs[:NUM_CUES].argmax())
    assert obs.sum() == 1.0 and obs.dtype == np.float32
    for _ in range(delay):
        obs, reward, terminated, truncated, _ = env.step(cue)  # answering early is ignored
        assert reward == 0.0 and not terminated and not truncated
        np.testing.assert_array_equal(obs, np.eye(NUM_CUES + 2)[NUM_CUES + 1])  # blank
    obs, reward, terminated, _, _ = env.step(cue)
    np.testing.assert_array_equal(obs, np.eye(NUM_CUES + 2)[NUM_CUES])  # query
    assert reward == 0.0 and not terminated
    _, reward, terminated, _, _ = env.step(cue)
    assert reward == 1.0 and terminated


def test_vector_env_is_same_step_and_seeded():
    def rollout(seed):
        env = make_vector_env({"name": "recall", "delay": 2}, num_envs=4, seed=seed)
        obs, _ = env.reset(seed=seed)
        trajectory = [obs]
        for _ in range(30):
            trajectory.append(env.step(env.action_space.sample())[0])
        assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
        return np.stack(trajectory)

    np.testing.assert_array_equal(rollout(5), rollout(5))
    assert not np.array_equal(rollout(5), rollout(6))


def test_make_vec_uses_native_vector_env():
    env = gymnasium.make_vec(ENV_ID, num_envs=3, vectorization_mode="vector_entry_point")
    obs, _ = env.reset(seed=0)
    assert obs.shape == (3, 4 + 2)


@pytest.mark.parametrize("options", [{"delay": -1}, {"num_cues": 0}, {"dely": 3}])
def test_bad_options_raise(options):
    with pytest.raises(ValueError):
        make_vector_env({"name": "recall", **options}, num_envs=2, seed=0)
