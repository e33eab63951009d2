"""Smoke test of every env family through the one factory, plus Atari reward handling."""

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from omegaconf import OmegaConf

from envs import make_vector_env

NUM_ENVS = 2


def _smoke(cfg, steps: int = 60) -> int:
    """Step random actions; check spaces and the wrapper contract; count finished episodes."""
    env = make_vector_env(OmegaConf.create(cfg), num_envs=NUM_ENVS, seed=0)
    assert isinstance(env.metadata["autoreset_mode"], AutoresetMode)
    assert env.env_name.startswith(f"{cfg['name']}:")
    obs, _ = env.reset()
    assert env.observation_space.contains(obs)
    episodes = 0
    for _ in range(steps):
        obs, rewards, terminated, truncated, info = env.step(env.action_space.sample())
        assert env.observation_space.contains(obs)
        assert rewards.shape == terminated.shape == truncated.shape == (NUM_ENVS,)
        if "_episode" in info:
            finished = info["_episode"]
            assert finished.shape == (NUM_ENVS,)
            assert np.all(info["episode"]["l"][finished] > 0)
            episodes += int(finished.sum())
    env.close()
    return episodes


def test_recall():
    assert _smoke({"name": "recall", "delay": 2}) > 0


def test_gym():
    assert _smoke({"name": "gym", "id": "CartPole-v1"}) > 0


def test_gym_async():
    assert _smoke({"name": "gym", "id": "CartPole-v1", "vectorization": "async"}) > 0


@pytest.mark.popgym
@pytest.mark.parametrize("task", ["RepeatPrevious", "Autoencode", "PositionOnlyPendulum"])
def test_popgym(task):
    pytest.importorskip("popgym")
    episodes = _smoke({"name": "popgym", "id": task, "difficulty": "Easy"}, steps=210)
    assert episodes > 0


@pytest.mark.popgym
def test_popgym_unknown_id_lists_ids():
    pytest.importorskip("popgym")
    with pytest.raises(ValueError, match="RepeatPrevious"):
        make_vector_env({"name": "popgym", "id": "NoSuchTask"}, num_envs=NUM_ENVS, seed=0)


@pytest.mark.atari
def test_atari():
    pytest.importorskip("ale_py")
    cfg = {"name": "atari", "game": "breakout", "frame_stack": 4}
    assert _smoke(cfg, steps=200) > 0


@pytest.mark.atari
def test_atari_logs_raw_returns_but_trains_on_clipped_rewards():
    pytest.importorskip("ale_py")
    # Space invaders pays 5-30 points per alien; the same seed and actions drive both envs.
    cfg = {"name": "atari", "game": "space_invaders", "frame_stack": 1}
    clipped_env = make_vector_env(cfg, num_envs=1, seed=0)
    raw_env = make_vector_env({**cfg, "clip_rewards": False}, num_envs=1, seed=0)
    clipped_env.reset()
    raw_env.reset()
    raw_return = 0.0
    for _ in range(2000):
        action = clipped_env.action_space.sample()
        _, clipped, *_, info = clipped_env.step(action)
        _, raw, *_ = raw_env.step(action)
        assert set(np.unique(clipped)) <= {-1, 0, 1}
        raw_return += float(raw[0])
        if info.get("_episode", [False])[0]:
            break
    else:
        pytest.fail("no episode finished")
    assert raw_return > 1.0
    assert info["episode"]["r"][0] == pytest.approx(raw_return)


@pytest.mark.atari
def test_atari_unknown_game_lists_games():
    pytest.importorskip("ale_py")
    with pytest.raises(ValueError, match="breakout"):
        make_vector_env({"name": "atari", "game": "no_such_game"}, num_envs=NUM_ENVS, seed=0)


@pytest.mark.procgen
def test_procgen():
    pytest.importorskip("procgen")
    cfg = {"name": "procgen", "game": "caveflyer", "distribution_mode": "memory"}
    assert _smoke(cfg, steps=100) > 0


@pytest.mark.procgen
def test_procgen_is_seeded():
    pytest.importorskip("procgen")

    def rollout():
        env = make_vector_env({"name": "procgen"}, num_envs=NUM_ENVS, seed=3)
        frames = [env.reset()[0]]
        frames += [env.step(env.action_space.sample())[0] for _ in range(20)]
        env.close()
        return np.stack(frames)

    np.testing.assert_array_equal(rollout(), rollout())


@pytest.mark.procgen
def test_procgen_memory_mode_needs_a_memory_game():
    pytest.importorskip("procgen")
    with pytest.raises(ValueError, match="no memory mode"):
        cfg = {"name": "procgen", "game": "coinrun", "distribution_mode": "memory"}
        make_vector_env(cfg, num_envs=NUM_ENVS, seed=0)


@pytest.mark.popgym
@pytest.mark.parametrize(
    ("task", "difficulty"),
    [
        ("Concentration", "Easy"),
        ("HigherLower", "Easy"),
        ("PositionOnlyCartPole", "Medium"),
        ("RepeatPrevious", "Medium"),
    ],
)
def test_popgym_suite_tasks_build_and_step(task, difficulty):
    """The POPGym suite's tasks beyond the memory suite's: ids only, through configs/env/popgym.yaml."""
    pytest.importorskip("popgym")
    episodes = _smoke({"name": "popgym", "id": task, "difficulty": difficulty}, steps=220)
    assert episodes > 0  # Concentration Easy's episodes are 104 steps, HigherLower's 51
