"""``render_mode="rgb_array"``: every family renders one rgb frame per sub-env, for video."""

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from envs import make_vector_env
from envs.recall import RENDER_SIZE

NUM_ENVS = 3


def _frames(cfg, steps: int = 2, num_envs: int = NUM_ENVS):
    """Make the env with rgb_array rendering, take a few random steps, return its render()."""
    env = make_vector_env(cfg, num_envs=num_envs, seed=0, render_mode="rgb_array")
    assert env.render_mode == "rgb_array"
    env.reset()
    for _ in range(steps):
        env.step(env.action_space.sample())
    frames = env.render()
    env.close()
    return frames


def _assert_rgb_frames(frames, shape):
    # RecordVideo asserts a Sequence (a tuple or list, not one stacked array) of num_envs frames.
    assert isinstance(frames, (tuple, list))
    assert len(frames) == NUM_ENVS
    for frame in frames:
        assert isinstance(frame, np.ndarray)
        assert frame.dtype == np.uint8
        assert frame.shape == shape


def test_recall_renders_cue_then_query():
    delay = 2
    cfg = {"name": "recall", "delay": delay}
    env = make_vector_env(cfg, num_envs=NUM_ENVS, seed=0, render_mode="rgb_array")
    obs, _ = env.reset()
    frames = env.render()
    _assert_rgb_frames(frames, (RENDER_SIZE, RENDER_SIZE, 3))
    cues = obs[:, :-2].argmax(axis=1)
    bars = np.array([frame[RENDER_SIZE // 2, 0] for frame in frames])
    assert np.all(bars.max(axis=1) == 255) and not np.any(np.all(bars == 255, axis=1))  # colours
    same_cue = cues[:, None] == cues[None, :]
    assert np.array_equal(same_cue, np.all(bars[:, None] == bars[None, :], axis=2))  # one per cue
    for _ in range(delay):
        env.step(env.action_space.sample())
        assert all(frame[RENDER_SIZE // 2].max() == 0 for frame in env.render())  # waiting: blank
    env.step(env.action_space.sample())
    assert all(np.all(frame[RENDER_SIZE // 2] == 255) for frame in env.render())  # query: white
    env.close()


def test_no_render_mode_renders_nothing():
    env = make_vector_env({"name": "recall"}, num_envs=NUM_ENVS, seed=0)
    env.reset()
    assert env.render_mode is None
    assert env.render() is None


def test_gym_cartpole_renders():
    pytest.importorskip("pygame")
    _assert_rgb_frames(_frames({"name": "gym", "id": "CartPole-v1"}), (400, 600, 3))


class NoRenderEnv(gymnasium.Env):
    """A valid env whose constructor takes no render_mode."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        return np.zeros(2, np.float32), 0.0, False, False, {}


def test_env_that_cannot_render_raises_clearly():
    with pytest.raises(ValueError, match=r"NoRenderEnv.*render_mode"):
        make_vector_env(
            {"name": "gym", "id": f"{__name__}:NoRenderEnv"}, num_envs=2, seed=0, render_mode="rgb_array"
        )
    with pytest.raises(ValueError, match="render modes"):
        make_vector_env({"name": "recall"}, num_envs=2, seed=0, render_mode="human")


@pytest.mark.atari
def test_atari_renders_with_the_fast_path_spaces():
    pytest.importorskip("ale_py")
    cfg = {"name": "atari", "game": "breakout", "frame_stack": 4}
    fast = make_vector_env(cfg, num_envs=NUM_ENVS, seed=0)
    slow = make_vector_env(cfg, num_envs=NUM_ENVS, seed=0, render_mode="rgb_array")
    assert slow.single_observation_space == fast.single_observation_space
    assert slow.single_action_space == fast.single_action_space
    assert slow.metadata["autoreset_mode"] == AutoresetMode.NEXT_STEP
    obs, _ = slow.reset()
    assert obs.shape == (NUM_ENVS, 4, 84, 84) and obs.dtype == np.uint8
    obs, *_ = slow.step(slow.action_space.sample())
    assert slow.observation_space.contains(obs)
    _assert_rgb_frames(slow.render(), (210, 160, 3))
    fast.close()
    slow.close()


@pytest.mark.procgen
def test_procgen_renders():
    pytest.importorskip("procgen")
    _assert_rgb_frames(_frames({"name": "procgen", "game": "maze"}), (512, 512, 3))


def test_record_video_writes_mp4(tmp_path):
    pytest.importorskip("moviepy")
    from gymnasium.wrappers.vector import RecordVideo

    env = make_vector_env({"name": "recall", "delay": 2}, num_envs=2, seed=0, render_mode="rgb_array")
    env = RecordVideo(env, str(tmp_path), episode_trigger=lambda episode: True)
    env.reset()
    for _ in range(10):  # several episodes of length delay + 2
        env.step(env.action_space.sample())
    env.close()
    videos = sorted(tmp_path.glob("*.mp4"))
    assert videos, f"no video written in {tmp_path}"
    assert all(video.stat().st_size > 0 for video in videos)
