"""The PPO learner's normalisation options (algo.normalize_obs, algo.normalize_reward): what they
normalise, that the statistics travel in the checkpoint (resume, evaluation) and that NaN or Inf
never enters them."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from gymnasium import spaces
from omegaconf import OmegaConf

from agents.checkpoint import load_checkpoint, save_checkpoint
from agents.evaluate import evaluate, evaluation_runner
from agents.normalization import RunningMeanStd, observation_statistics
from envs import make_vector_env
from jobs import train
from tests.helpers_learner import CARTPOLE, make_learner
from tests.test_train import tiny_cfg

pytestmark = pytest.mark.filterwarnings("ignore:.*Box observation space:UserWarning")
NORMALIZED = {"normalize_obs": True, "normalize_reward": True, "num_envs": 4, "rollout_len": 8}


def record_raw_observations(learner) -> list[np.ndarray]:
    """The raw observation batches the envs return from now on (reset first), in order."""
    raw: list[np.ndarray] = []
    envs, reset, step = learner.envs, learner.envs.reset, learner.envs.step

    def recording_reset(**kwargs):
        out = reset(**kwargs)
        raw.append(np.array(out[0], copy=True))
        return out

    def recording_step(action):
        out = step(action)
        raw.append(np.array(out[0], copy=True))
        return out

    envs.reset, envs.step = recording_reset, recording_step
    return raw


def test_observations_are_normalised_by_the_running_statistics_of_every_raw_observation():
    learner = make_learner(CARTPOLE, **NORMALIZED)
    raw = record_raw_observations(learner)
    learner.obs_stats[""] = RunningMeanStd((4,))  # count from the reset below
    learner.reset_envs(seed=3)
    ro = learner.collect()
    ref = RunningMeanStd((4,))
    for t in range(ro.obs.shape[0]):
        ref.update(torch.as_tensor(raw[t]))
        torch.testing.assert_close(ro.obs[t], ref.normalize(torch.as_tensor(raw[t])))
    assert float(learner.obs_stats[""].count) == 4 * (ro.obs.shape[0] + 1)  # and the next obs


def test_non_finite_observations_never_enter_the_statistics():
    learner = make_learner(CARTPOLE, **NORMALIZED)
    stats = learner.obs_stats[""]
    count, mean = float(stats.count), stats.mean.clone()
    bad = np.full((4, 4), np.nan, np.float32)
    bad[1, 2] = np.inf
    learner._observe(bad)
    assert float(stats.count) == count and float(stats.skipped) == 4 and torch.equal(stats.mean, mean)


def test_rewards_for_gae_are_scaled_while_logged_returns_and_the_core_input_stay_raw():
    # CartPole pays 1 per step: raw returns are the episode lengths, raw rewards are all 1.
    learner = make_learner(CARTPOLE, **NORMALIZED)
    rollouts = []
    while len(learner.episode_returns) < 2:
        rollouts.append(learner.collect())
    assert list(learner.episode_returns) == list(learner.episode_lengths)
    rewards = torch.cat([ro.rewards[ro.valid] for ro in rollouts])
    assert not torch.allclose(rewards, torch.ones_like(rewards))
    std = learner.reward_scaler.stats.var.sqrt()
    torch.testing.assert_close(rollouts[-1].rewards[-1], (1 / std).float().expand(4))
    prev = torch.cat([ro.prev_rewards.flatten() for ro in rollouts])
    assert set(prev.unique().tolist()) <= {0.0, 1.0}


def test_statistics_round_trip_through_a_weights_only_checkpoint_and_resume_normalises_alike(tmp_path):
    a = make_learner(CARTPOLE, seed=0, **NORMALIZED)
    for _ in range(2):
        a.update(a.collect())
    path = save_checkpoint(a.state_dict(), tmp_path / "checkpoint.pt")
    b = make_learner(CARTPOLE, seed=1, **NORMALIZED)
    b.load_state_dict(load_checkpoint(path))  # weights_only=True
    saved = a.normalization_state()
    assert saved.keys() == {"obs", "reward"}
    for key in ("count", "mean", "m2", "skipped"):
        assert torch.equal(b.obs_stats[""].state_dict()[key], saved["obs"][""][key])
    assert torch.equal(b.reward_scaler.returns, a.reward_scaler.returns)
    # the resumed learner and the uninterrupted one go on identically on the same data
    rng = np.random.default_rng(0)
    for _ in range(3):
        obs = rng.normal(size=(4, 4)).astype(np.float32)
        assert torch.equal(b._observe(obs), a._observe(obs))
        reward, ended = torch.as_tensor(rng.normal(size=4), dtype=torch.float32), torch.rand(4) < 0.3
        assert torch.equal(b.reward_scaler(reward, ended), a.reward_scaler(reward, ended))


def test_resume_refuses_statistics_the_learner_does_not_keep(tmp_path):
    a = make_learner(CARTPOLE, **NORMALIZED)
    plain = make_learner(CARTPOLE, num_envs=4)
    with pytest.raises(ValueError, match="normalize_obs"):
        plain.load_state_dict(a.state_dict())
    with pytest.raises(ValueError, match="normalize_obs"):
        a.load_state_dict(plain.state_dict())


def test_only_flat_float_parts_are_normalised_and_a_space_without_any_is_refused():
    image = spaces.Box(0, 255, (3, 8, 8), np.uint8)
    vector = spaces.Box(-1, 1, (5,), np.float32)
    stats = observation_statistics(
        spaces.Dict({"image": image, "pos": vector, "id": spaces.Discrete(3)}), "cpu"
    )
    assert list(stats) == ["pos"] and stats["pos"].mean.shape == (5,)
    for space in (image, spaces.Discrete(4), spaces.Dict({"image": image})):
        with pytest.raises(ValueError, match=r"normalize_obs.*has none"):
            observation_statistics(space, "cpu")


@pytest.mark.parametrize(
    ("choices", "values"),
    [((), {"algo.normalize_obs": True}), (("algo=stream",), {"policy.mlp_hidden": [8]})],
)
def test_evaluation_applies_the_saved_observation_statistics_frozen(tmp_path, choices, values):
    # PPO with algo.normalize_obs, and stream AC(λ) (obs_norm on by default; with an MLP encoder,
    # LayerNorm in its network): the evaluation runner normalises as training did, learning nothing.
    cfg = tiny_cfg("env=gym", "env.id=CartPole-v1", *choices, log_dir=str(tmp_path), **values)
    summary = train(cfg)
    payload = load_checkpoint(summary["checkpoint"])
    saved = payload["normalization"]["obs"]
    saved = saved.get("", saved)  # PPO keeps statistics by part, stream one set
    cfg = OmegaConf.create(payload["config"])
    envs = make_vector_env(cfg.env, num_envs=2, seed=5)
    raw = envs.reset(seed=5)[0]
    runner = evaluation_runner(payload, cfg, envs, torch.device("cpu"))
    runner.reset_envs(seed=5)
    stats = runner.obs_stats[""]
    assert torch.equal(stats.mean, saved["mean"]) and torch.equal(stats.m2, saved["m2"])
    torch.testing.assert_close(runner.obs, stats.normalize(torch.as_tensor(raw)))
    runner.collect()
    assert torch.equal(stats.count, saved["count"])  # frozen
    if choices:  # stream's policy network is rebuilt with its LayerNorms
        assert any(isinstance(m, torch.nn.LayerNorm) for m in runner.agent.modules())
    envs.close()
    assert evaluate(summary["checkpoint"], episodes=2, num_envs=2)["episodes"] == 2
