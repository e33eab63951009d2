"""The memory benchmarks beyond POPGym: velocity-masked control and MiniGrid Memory, as env configs."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from envs.masked import POSITIONS, PositionsOnly
from jobs import train
from tests.test_train import _restore_torch_threads, tiny_cfg  # noqa: F401  (autouse fixture)

MUJOCO = pytest.mark.mujoco


@pytest.mark.parametrize(
    "masked_id",
    [
        "CartPoleNoVel-v1",
        "PendulumNoVel-v1",
        "MountainCarContinuousNoVel-v0",
        pytest.param("HalfCheetahNoVel-v5", marks=MUJOCO),
        pytest.param("HopperNoVel-v5", marks=MUJOCO),
    ],
)
def test_masked_env_shows_the_base_envs_positions_only(masked_id):
    base_id, keep = POSITIONS[masked_id]
    if "v5" in base_id:
        pytest.importorskip("mujoco")
    masked, base = gymnasium.make(masked_id), gymnasium.make(base_id)
    assert masked.observation_space.shape == (len(keep),)
    obs, _ = masked.reset(seed=3)
    want, _ = base.reset(seed=3)
    base.action_space.seed(0)
    for _ in range(20):
        np.testing.assert_array_equal(obs, want[list(keep)])
        assert masked.observation_space.contains(obs)
        action = base.action_space.sample()
        obs, *_ = masked.step(action)
        want, *_ = base.step(action)


def test_positions_only_refuses_indices_outside_the_observation():
    with pytest.raises(ValueError, match="do not fit an observation of size 4"):
        PositionsOnly(gymnasium.make("CartPole-v1"), (0, 4))


SMOKE = [
    pytest.param(("env=novel",), {}, None, id="novel-CartPoleNoVel"),
    pytest.param(("env=novel",), {"env.id": "PendulumNoVel-v1"}, None, id="novel-PendulumNoVel"),
    pytest.param(
        ("env=novel",),
        {"env.id": "MountainCarContinuousNoVel-v0"},
        None,
        id="novel-MountainCarContinuousNoVel",
    ),
    pytest.param(("env=masked_mujoco",), {}, "mujoco", marks=MUJOCO, id="mujoco-HalfCheetahNoVel"),
    pytest.param(
        ("env=masked_mujoco",), {"env.id": "HopperNoVel-v5"}, "mujoco", marks=MUJOCO, id="mujoco-HopperNoVel"
    ),
    pytest.param(
        ("env=minigrid_memory",),
        {"total_steps": 64},
        "minigrid",
        marks=pytest.mark.minigrid,
        id="minigrid-MemoryS7",
    ),
    pytest.param(
        ("env=minigrid_memory",),
        {"env.id": "minigrid:MiniGrid-MemoryS13-v0", "total_steps": 64},
        "minigrid",
        marks=pytest.mark.minigrid,
        id="minigrid-MemoryS13",
    ),
]


@pytest.mark.parametrize(("choices", "values", "needs"), SMOKE)
def test_env_config_trains(tmp_path, choices, values, needs):
    if needs:
        pytest.importorskip(needs)
    cfg = tiny_cfg(*choices, **values)
    summary = train(cfg, run_dir=tmp_path)
    assert summary["global_step"] >= cfg.total_steps and summary["skipped_updates"] == 0


@pytest.mark.minigrid
def test_minigrid_grid_reaches_the_agent_as_categories_with_its_values_unchanged():
    pytest.importorskip("minigrid")
    from envs.make import make_vector_env

    with pytest.warns(UserWarning, match="'mission'"):
        env = make_vector_env({"name": "gym", "id": "minigrid:MiniGrid-MemoryS7-v0"}, num_envs=2, seed=0)
    raw = gymnasium.make("MiniGrid-MemoryS7-v0")
    space = env.single_observation_space
    assert isinstance(space["image"], gymnasium.spaces.MultiDiscrete)
    np.testing.assert_array_equal(space["image"].nvec, np.tile([11, 6, 3], 49))
    obs, _ = env.reset(seed=5)
    want, _ = raw.reset(seed=5)
    np.testing.assert_array_equal(obs["image"][0], want["image"].reshape(-1))
    assert space.contains({key: value[0] for key, value in obs.items()})
    for _ in range(5):
        obs, *_ = env.step(np.array([2, 2]))
        want, *_ = raw.step(2)
        np.testing.assert_array_equal(obs["image"][0], want["image"].reshape(-1))
    env.close()


@pytest.mark.minigrid
def test_symbolic_view_only_for_minigrids_grid():
    pytest.importorskip("minigrid")
    from minigrid.wrappers import ImgObsWrapper, RGBImgPartialObsWrapper

    from agents.encoders import make_encoder
    from envs.minigrid import SymbolicGrid, symbolic_minigrid

    alone = symbolic_minigrid(ImgObsWrapper(gymnasium.make("MiniGrid-MemoryS7-v0")))
    assert isinstance(alone.observation_space, gymnasium.spaces.MultiDiscrete)
    assert alone.observation_space.shape == (7, 7, 3)
    obs, _ = alone.reset(seed=0)
    assert alone.observation_space.contains(obs)
    flat = gymnasium.spaces.MultiDiscrete(alone.observation_space.nvec.reshape(-1))
    assert make_encoder(flat).out_size == 49 * 20  # one-hot: 11 objects + 6 colours + 3 states a cell
    pixels = RGBImgPartialObsWrapper(gymnasium.make("MiniGrid-MemoryS7-v0"))
    assert symbolic_minigrid(pixels) is pixels
    cartpole = gymnasium.make("CartPole-v1")
    assert symbolic_minigrid(cartpole) is cartpole
    with pytest.raises(ValueError, match="does not observe a MiniGrid symbolic grid"):
        SymbolicGrid(cartpole)
