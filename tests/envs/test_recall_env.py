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


def _play_distractors(delay: int, remember: str, num_envs: int = 8, steps: int = 400):
    """Scripted agent on recall among distractors: keeps the ``first`` or the ``last`` cue seen."""
    cfg = {"name": "recall", "delay": delay, "num_cues": NUM_CUES, "distractors": True}
    env = make_vector_env(cfg, num_envs=num_envs, seed=0)
    obs, _ = env.reset()
    memory = np.zeros(num_envs, dtype=np.int64)
    returns = []
    for _ in range(steps):
        shown = obs[:, :NUM_CUES].any(axis=1)
        is_cue = shown & (obs[:, NUM_CUES + 1] == 0)  # the cue step has the delay bit clear
        write = is_cue if remember == "first" else shown
        memory[write] = obs[write, :NUM_CUES].argmax(axis=1)
        obs, _, _, _, info = env.step(memory)
        if "_episode" in info:
            returns.extend(info["episode"]["r"][info["_episode"]])
    env.close()
    return np.array(returns)


def test_distractors_reward_only_the_first_cue():
    delay = 5
    first = _play_distractors(delay, "first")
    assert len(first) > 100 and np.all(first == 1.0)
    # Holding the most recent cue is wrong: the last one shown is a random distractor.
    last = _play_distractors(delay, "last")
    assert len(last) > 100
    assert abs(last.mean() - 1 / NUM_CUES) < 0.1


def test_distractors_fill_the_delay_and_mark_it():
    delay = 6
    env = DelayedRecallEnv(delay=delay, num_cues=NUM_CUES, distractors=True)
    obs, _ = env.reset(seed=3)
    assert obs[:NUM_CUES].sum() == 1.0 and obs[NUM_CUES:].sum() == 0.0  # the cue: no phase bit
    seen = set()
    for _ in range(delay):
        obs, reward, terminated, _, _ = env.step(0)
        assert obs[:NUM_CUES].sum() == 1.0 and obs[NUM_CUES + 1] == 1.0 and obs[NUM_CUES] == 0.0
        assert reward == 0.0 and not terminated
        seen.add(int(obs[:NUM_CUES].argmax()))
    assert len(seen) > 1  # random distractors, not a held copy of the cue
    obs, _, _, _, _ = env.step(0)
    np.testing.assert_array_equal(obs, np.eye(NUM_CUES + 2)[NUM_CUES])  # query
    check_env(DelayedRecallEnv(delay=3, num_cues=NUM_CUES, distractors=True), skip_render_check=True)


def test_distractors_off_keeps_the_default_task():
    """The option draws no extra random numbers when off: same episodes as before it existed."""

    def rollout(extra):
        env = make_vector_env({"name": "recall", "delay": 3, **extra}, num_envs=4, seed=7)
        obs, _ = env.reset(seed=7)
        trajectory = [obs]
        for _ in range(20):
            trajectory.append(env.step(np.zeros(4, dtype=np.int64))[0])
        return np.stack(trajectory)

    plain = rollout({})
    np.testing.assert_array_equal(plain, rollout({"distractors": False}))
    assert plain[:, :, :NUM_CUES].sum(axis=2).max() == 1.0
    assert not np.array_equal(plain, rollout({"distractors": True}))


def test_distractors_single_and_vector_env_agree():
    """Both views share the task: the same seed gives the same first episode."""
    single = DelayedRecallEnv(delay=4, num_cues=NUM_CUES, distractors=True)
    obs, _ = single.reset(seed=11)
    episode = [obs]
    for _ in range(5):
        episode.append(single.step(0)[0])
    vec = make_vector_env({"name": "recall", "delay": 4, "distractors": True}, num_envs=1, seed=0)
    vobs, _ = vec.reset(seed=11)
    vepisode = [vobs[0]]
    for _ in range(5):
        vepisode.append(vec.step(np.zeros(1, dtype=np.int64))[0][0])
    np.testing.assert_array_equal(np.stack(episode), np.stack(vepisode))


def test_distractors_must_be_a_bool():
    with pytest.raises(ValueError, match="distractors"):
        make_vector_env({"name": "recall", "distractors": "yes"}, num_envs=2, seed=0)


def test_distractors_render_half_bright():
    env = DelayedRecallEnv(delay=2, num_cues=NUM_CUES, distractors=True, render_mode="rgb_array")
    env.reset(seed=0)
    cue_frame = env.render()
    obs, *_ = env.step(0)
    distractor_frame = env.render()
    assert cue_frame[32].max() == 255  # the cue: a fully saturated colour
    assert 0 < distractor_frame[32].max() < 255
    np.testing.assert_array_equal(distractor_frame[32, 32], env._batch.colours[obs[:NUM_CUES].argmax()] // 2)
