"""Truncated episodes are bootstrapped, whichever autoreset mode the env uses, and procgen's
time-outs are reported as truncations."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv, VectorWrapper
from gymnasium.wrappers import TimeLimit

from agents.learner import Learner, LearnerConfig
from agents.policy import ActorCritic
from agents.rules import RTRL
from tests.helpers_learner import advantages

LIMIT = 3  # steps before the time limit truncates an episode


class Clock(gymnasium.Env):
    """obs = [t / 10]; reward 1 per step; never terminates (only the time limit ends it)."""

    observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.array([0.0], np.float32), {}

    def step(self, action):
        self.t += 1
        return np.array([self.t / 10], np.float32), 1.0, False, False, {}


class DropFinalObs(VectorWrapper):
    """A SAME_STEP env that, like procgen, reports no final observation."""

    def step(self, actions):
        obs, reward, term, trunc, info = self.env.step(actions)
        info = {k: v for k, v in info.items() if k not in ("final_obs", "_final_obs")}
        return obs, reward, term, trunc, info


def clock_learner(mode: AutoresetMode, drop_final: bool = False) -> Learner:
    env = SyncVectorEnv([lambda: TimeLimit(Clock(), LIMIT)] * 2, autoreset_mode=mode)
    if drop_final:
        env = DropFinalObs(env)
    torch.manual_seed(0)
    agent = ActorCritic(env.single_observation_space, env.single_action_space, core="elstm", hidden_size=5)
    agent.double()
    cfg = LearnerConfig(rollout_len=LIMIT + 2, update="a2c", gamma=0.9)
    return Learner(agent, RTRL(agent.core), env, cfg, torch.device("cpu"))


def test_same_step_truncation_bootstraps_as_next_step_does():
    # The first episode is the same sequence under both modes (the actions change nothing), so its
    # advantages must agree; before the fix SAME_STEP treated the time-out as a termination.
    adv = {}
    for mode in (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP):
        learner = clock_learner(mode)
        ro = learner.collect()
        adv[mode] = advantages(learner, ro)[0][:LIMIT].double()
    cut = LIMIT - 1
    assert adv[AutoresetMode.SAME_STEP][cut].abs().min() > 0
    torch.testing.assert_close(adv[AutoresetMode.SAME_STEP], adv[AutoresetMode.NEXT_STEP], rtol=1e-12, atol=0)


def test_same_step_truncation_without_final_obs_bootstraps_from_the_last_value():
    learner = clock_learner(AutoresetMode.SAME_STEP, drop_final=True)
    ro = learner.collect()
    cut = LIMIT - 1
    assert ro.terminated[cut].all() and ro.ended[cut].all()
    torch.testing.assert_close(ro.rewards[cut].double(), 1.0 + 0.9 * ro.values[cut].double())
    # steps that did not end are untouched
    assert (ro.rewards[:cut] == 1.0).all() and not ro.terminated[:cut].any()


def test_same_step_termination_is_not_bootstrapped():
    # the recall task only terminates: rewards stay raw
    from tests.helpers_learner import make_learner

    learner = make_learner()
    ro = learner.collect()
    assert ((ro.rewards == 0) | (ro.rewards == 1)).all()


@pytest.mark.procgen
def test_procgen_time_out_is_a_truncation():
    pytest.importorskip("procgen")
    from envs.procgen import ProcgenVectorEnv, step_limit

    env = ProcgenVectorEnv(4, game="maze", distribution_mode="memory")
    env.reset(seed=0)
    limit = step_limit("maze", "memory")
    ends = np.zeros((0, 3))
    for t in range(1, limit + 1):
        # NOOP (action 4) never solves a maze, so every episode runs into the time limit
        _, _, term, trunc, _ = env.step(np.full(4, 4))
        if term.any() or trunc.any():
            ends = np.vstack([ends, [[t, term.sum(), trunc.sum()]]])
    env.close()
    assert ends.tolist() == [[limit, 0, 4]], ends
