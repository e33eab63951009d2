"""Observations users have reach the agents laid out for them, through small fake envs.

Images in either layout end channels-first, n-D Boxes flat, Dict/Tuple spaces one flat Dict with
parts no encoder takes dropped (one warning naming them), and what no layout fixes still raises.
Each fake env's observation is fixed (the env checker wants determinism), so the adapter's output
can be compared with the raw observation element by element.
"""

from __future__ import annotations

import copy
import math

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv

from agents.checkpoint import load_checkpoint
from envs import make_vector_env
from envs.observations import AgentObservations, agent_observations
from jobs import train
from tests.test_train import _restore_torch_threads, tiny_cfg  # noqa: F401  (autouse fixture)

IMAGE_HWC = spaces.Box(0, 255, (10, 12, 3), np.uint8)
SPACES = {
    "hwc": IMAGE_HWC,
    "chw": spaces.Box(0, 255, (3, 10, 12), np.uint8),
    "matrix": spaces.Box(-1.0, 1.0, (3, 4), np.float32),
    "grid": spaces.MultiDiscrete(np.array([[2, 3], [4, 5]])),
    "dict": spaces.Dict(
        {
            "image": IMAGE_HWC,
            "direction": spaces.Discrete(4),
            "pose": spaces.Box(-1.0, 1.0, (2, 2), np.float32),
            "mission": spaces.Text(max_length=8),
        }
    ),
    "tuple": spaces.Tuple((spaces.Discrete(3), spaces.Box(-1.0, 1.0, (2,), np.float32))),
    "nested": spaces.Dict(
        {
            "arm": spaces.Dict(
                {"pos": spaces.Box(-1.0, 1.0, (2,), np.float32), "grip": spaces.MultiBinary(3)}
            ),
            "goal": spaces.Tuple((spaces.Discrete(2), spaces.Text(max_length=4))),
        }
    ),
    "flat_dict": spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Box(-1.0, 1.0, (3,), np.float32)}),
    "text_only": spaces.Dict({"mission": spaces.Text(max_length=8)}),
    "square_image": spaces.Box(0, 255, (8, 8, 8), np.uint8),
}


class SpaceEnv(gymnasium.Env):
    """A valid env with observation space ``SPACES[kind]``, a fixed observation, 4-step episodes."""

    action_space = spaces.Discrete(2)

    def __init__(self, kind: str = "hwc") -> None:
        self.observation_space = copy.deepcopy(SPACES[kind])
        self.observation_space.seed(0)
        self.obs = self.observation_space.sample()
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return copy.deepcopy(self.obs), {}

    def step(self, action):
        self.t += 1
        return copy.deepcopy(self.obs), float(action), self.t >= 4, False, {}


def _make(kind: str, num_envs: int = 2):
    return make_vector_env(
        {"name": "gym", "id": f"{__name__}:SpaceEnv", "kwargs": {"kind": kind}}, num_envs=num_envs, seed=0
    )


def _first_obs(kind: str):
    env = _make(kind)
    obs, _ = env.reset()
    assert env.observation_space.contains(obs)
    obs, *_ = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs)
    return env, obs, SpaceEnv(kind).obs


def test_channels_last_image_is_transposed_once():
    env, obs, raw = _first_obs("hwc")
    assert env.single_observation_space == spaces.Box(0, 255, (3, 10, 12), np.uint8)
    assert obs.shape == (2, 3, 10, 12)
    np.testing.assert_array_equal(obs[1], raw.transpose(2, 0, 1))


@pytest.mark.parametrize("kind", ["chw", "flat_dict"])
def test_spaces_already_laid_out_pass_through_unwrapped(kind):
    env = _make(kind)
    assert env.single_observation_space == SPACES[kind]
    inner = env.env
    while hasattr(inner, "env"):
        assert not isinstance(inner, AgentObservations)
        inner = inner.env


@pytest.mark.parametrize("kind", ["matrix", "grid"])
def test_nd_boxes_and_multidiscrete_are_flattened(kind):
    _, obs, raw = _first_obs(kind)
    assert obs.shape == (2, math.prod(SPACES[kind].shape))
    np.testing.assert_array_equal(obs[0], np.ravel(raw))


def test_dict_keeps_each_part_in_the_agents_layout_and_drops_text_with_one_warning():
    with pytest.warns(UserWarning, match=r"dropped: 'mission' \(Text\)$") as record:
        env, obs, raw = _first_obs("dict")
    assert len([w for w in record if "dropped" in str(w.message)]) == 1
    space = env.single_observation_space
    assert isinstance(space, spaces.Dict) and set(space.spaces) == {"image", "direction", "pose"}
    assert space["image"].shape == (3, 10, 12) and space["pose"].shape == (4,)
    np.testing.assert_array_equal(obs["image"][0], raw["image"].transpose(2, 0, 1))
    np.testing.assert_array_equal(obs["pose"][1], raw["pose"].ravel())
    np.testing.assert_array_equal(obs["direction"], [raw["direction"]] * 2)


def test_tuple_and_nested_spaces_become_one_flat_dict_keyed_by_path():
    env, obs, raw = _first_obs("tuple")
    assert list(env.single_observation_space.spaces) == ["0", "1"]
    np.testing.assert_array_equal(obs["1"][0], raw[1])
    with pytest.warns(UserWarning, match=r"'goal\.1' \(Text\)"):
        env, obs, raw = _first_obs("nested")
    assert set(env.single_observation_space.spaces) == {"arm.pos", "arm.grip", "goal.0"}
    np.testing.assert_array_equal(obs["arm.grip"][1], raw["arm"]["grip"])


@pytest.mark.parametrize(
    ("kind", "reason"),
    [
        ("text_only", r"'mission': Text spaces cannot be encoded"),
        ("square_image", r"uint8 images must be channels-first"),  # no axis is the channel axis
    ],
)
def test_what_no_layout_can_fix_still_raises(kind, reason):
    with pytest.raises(ValueError, match=rf"unsupported observation space .*{reason}") as error:
        _make(kind)
    assert "supported: " in str(error.value)


def test_same_step_final_observation_is_laid_out_too():
    base = SyncVectorEnv([lambda: SpaceEnv("dict")] * 2, autoreset_mode=AutoresetMode.SAME_STEP)
    with pytest.warns(UserWarning, match="mission"):
        env = agent_observations(base, "fake")
    env.reset(seed=0)
    for _ in range(4):
        _, _, terminated, _, info = env.step(np.zeros(2, np.int64))
    assert terminated.all() and info["_final_obs"].all()
    final = info["final_obs"][1]
    assert set(final) == {"image", "direction", "pose"} and final["image"].shape == (3, 10, 12)
    assert env.single_observation_space.contains(final)


# --- the agents train on them end to end --------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "encoder_keys"),
    [
        ("hwc", ("encoder.conv.",)),
        ("dict", ("encoder.encoders.1.conv.", "encoder.encoders.2.net.")),  # direction, image, pose
        ("tuple", ("encoder.encoders.1.net.",)),
    ],
)
def test_trains_end_to_end(tmp_path, kind, encoder_keys):
    cfg = tiny_cfg(
        "env=gym", f"+env.kwargs.kind={kind}", total_steps=64, **{"env.id": f"{__name__}:SpaceEnv"}
    )
    summary = train(cfg, run_dir=tmp_path)
    assert summary["global_step"] == 64 and summary["skipped_updates"] == 0
    weights = load_checkpoint(summary["checkpoint"])["agent"]
    assert all(torch.isfinite(p).all() for p in weights.values())
    assert all(any(k.startswith(prefix) for k in weights) for prefix in encoder_keys), sorted(weights)
