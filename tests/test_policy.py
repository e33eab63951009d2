"""The policy head's Gaussian: its σ floor (algo.log_std_min) and where the key reaches the agent."""

import numpy as np
import pytest
import torch
from gymnasium import spaces
from hydra import compose, initialize_config_dir

from agents.policy import ActorCritic
from tests.test_train import ROOT

OBS, ACTIONS = spaces.Box(-1.0, 1.0, (3,), np.float32), spaces.Box(-1.0, 1.0, (2,), np.float32)


def gaussian(log_std_min: float | None) -> tuple[ActorCritic, torch.distributions.Distribution]:
    torch.manual_seed(0)
    agent = ActorCritic(OBS, ACTIONS, core="gru", hidden_size=4, log_std_min=log_std_min).double()
    with torch.no_grad():
        agent.log_std.copy_(torch.tensor([-5.0, 0.0]))  # one σ below the floor, one above
    return agent, agent.heads(torch.randn(6, 4, dtype=torch.float64))[0]


def test_the_floor_bounds_sigma_and_passes_no_gradient_below_it() -> None:
    agent, dist = gaussian(log_std_min=-3.0)
    torch.testing.assert_close(dist.stddev[0], torch.tensor([np.exp(-3.0), 1.0], dtype=torch.float64))
    dist.entropy().mean().backward()  # ∂H/∂log σ_i = 1 for each dimension i, where σ is free
    torch.testing.assert_close(agent.log_std.grad, torch.tensor([0.0, 1.0], dtype=torch.float64))


def test_without_a_floor_sigma_is_unbounded() -> None:
    agent, dist = gaussian(log_std_min=None)
    torch.testing.assert_close(dist.stddev[0], torch.tensor([np.exp(-5.0), 1.0], dtype=torch.float64))
    dist.entropy().mean().backward()
    torch.testing.assert_close(agent.log_std.grad, torch.tensor([1.0, 1.0], dtype=torch.float64))


@pytest.mark.parametrize(("overrides", "floor"), [([], -3.0), (["algo.log_std_min=null"], None)])
def test_the_learner_key_reaches_the_agent_that_trains_and_the_one_that_evaluates(overrides, floor) -> None:
    from agents.evaluate import evaluation_runner
    from agents.training import build
    from envs import make_vector_env

    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=["env=novel", "env.id=PendulumNoVel-v1", "num_envs=2", *overrides])
    learner = build(cfg, torch.device("cpu"))
    assert learner.agent.log_std_min == floor
    payload, cpu = {"agent": learner.agent.state_dict()}, torch.device("cpu")
    runner = evaluation_runner(payload, cfg, make_vector_env(cfg.env, num_envs=1, seed=0), cpu)
    assert runner.agent.log_std_min == floor
    del cfg.algo.log_std_min  # a run's config.yaml saved before the key: no floor
    runner = evaluation_runner(payload, cfg, make_vector_env(cfg.env, num_envs=1, seed=0), cpu)
    assert runner.agent.log_std_min is None


def test_a_floor_that_is_not_a_number_is_refused() -> None:
    from agents.learner_config import LearnerConfig

    with pytest.raises(ValueError, match="log_std_min must be a finite number"):
        LearnerConfig(log_std_min=float("nan"))
