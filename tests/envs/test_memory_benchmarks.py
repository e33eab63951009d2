"""The memory benchmarks beyond POPGym: velocity-masked control and MiniGrid Memory, as env configs."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from envs.masked import POSITIONS, PositionsOnly
from tests.test_train import _restore_torch_threads, tiny_cfg  # noqa: F401  (autouse fixture)
from train import train

MUJOCO = pytest.mark.mujoco


@pytest.mark.parametrize(
    "masked_id",
    [
        "CartPoleNoVel-v1",
        "PendulumNoVel-v1",
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
