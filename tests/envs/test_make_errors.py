"""Bad input to the factory fails early, with messages that say what is wrong."""

import copy

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces

from envs import ENV_MAKERS, make_vector_env


class BadSpaceEnv(gymnasium.Env):
    """A valid gymnasium env whose observation space the agents cannot encode."""

    def __init__(self, kind: str = "text"):
        self.observation_space = {
            "text": spaces.Text(max_length=4),
            # channels-last images are transposed (test_observation_layout.py); a middle axis is not
            "channels_middle": spaces.Box(0, 255, (64, 3, 64), np.uint8),
        }[kind]
        self.action_space = spaces.Discrete(2)
        self.observation_space.seed(0)
        self._obs = self.observation_space.sample()  # fixed, so the env checker sees determinism

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return copy.copy(self._obs), {}

    def step(self, action):
        return copy.copy(self._obs), 0.0, False, False, {}


class CrashEnv(gymnasium.Env):
    """Crashes after ``crash_after`` steps: late enough to pass gymnasium's env checker."""

    observation_space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, crash_after: int = 20):
        self.crash_after = crash_after
        self.steps = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.steps += 1
        if self.steps > self.crash_after:
            raise OSError("simulator lost")
        return np.zeros(2, np.float32), 0.0, False, False, {}


def _gym(env_id, **options):
    return make_vector_env({"name": "gym", "id": env_id, **options}, num_envs=2, seed=0)


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="valid names") as error:
        make_vector_env({"name": "mujoco"}, num_envs=2, seed=0)
    assert all(name in str(error.value) for name in ENV_MAKERS)


def test_unknown_gym_id_is_named():
    with pytest.raises(ValueError, match="NoSuchEnv-v0"):
        _gym("NoSuchEnv-v0")


def test_missing_module_is_named():
    with pytest.raises(ValueError, match="no_such_package_xyz"):
        _gym("no_such_package_xyz.envs:Foo")


def test_missing_class_is_named():
    with pytest.raises(ValueError, match="NoSuchClass"):
        _gym(f"{__name__}:NoSuchClass")


def test_bad_constructor_kwargs_name_the_env():
    with pytest.raises(ValueError, match="CartPole-v1"):
        _gym("CartPole-v1", kwargs={"no_such_arg": 1})


def test_unknown_vectorization():
    with pytest.raises(ValueError, match="vectorization"):
        _gym("CartPole-v1", vectorization="threads")


@pytest.mark.parametrize(("kind", "message"), [("text", "Text"), ("channels_middle", "channels")])
def test_unsupported_observation_space_is_named(kind, message):
    with pytest.raises(ValueError, match="unsupported observation space") as error:
        _gym(f"{__name__}:BadSpaceEnv", kwargs={"kind": kind})
    assert message in str(error.value)


def test_crash_in_step_names_the_env():
    env = _gym(f"{__name__}:CrashEnv")
    env.reset()
    with pytest.raises(RuntimeError, match=r"'gym:.*CrashEnv' crashed in step\(\)") as error:
        for _ in range(CrashEnv().crash_after + 1):
            env.step(env.action_space.sample())
    assert isinstance(error.value.__cause__, OSError)
