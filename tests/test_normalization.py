"""Running normalisation (agents/normalization.py): Welford against numpy, reward scaling, NaN guards."""

from __future__ import annotations

import numpy as np
import torch

from agents.normalization import RewardScaler, RunningMeanStd


def test_running_moments_equal_the_batch_moments():
    rng = np.random.default_rng(0)
    data = rng.normal(3.0, 2.0, size=(200, 5))
    stats = RunningMeanStd((5,))
    for chunk in np.array_split(data, [1, 2, 10, 50, 120]):  # uneven batches, one row at first
        stats.update(torch.as_tensor(chunk))
    np.testing.assert_allclose(stats.mean.numpy(), data.mean(0), rtol=1e-12)
    np.testing.assert_allclose(stats.var.numpy(), data.var(0, ddof=1), rtol=1e-12)
    x = torch.as_tensor(data[:3], dtype=torch.float32)
    want = (data[:3] - data.mean(0)) / np.sqrt(data.var(0, ddof=1) + 1e-8)
    np.testing.assert_allclose(stats.normalize(x).numpy(), want, rtol=1e-5)


def test_non_finite_rows_never_enter_the_statistics_and_state_round_trips():
    stats = RunningMeanStd((2,))
    stats.update(torch.tensor([[1.0, 2.0], [float("nan"), 0.0], [3.0, float("inf")], [5.0, 6.0]]))
    assert float(stats.count) == 2 and float(stats.skipped) == 2
    torch.testing.assert_close(stats.mean, torch.tensor([3.0, 4.0], dtype=torch.float64))
    other = RunningMeanStd((2,))
    other.load_state_dict(stats.state_dict())
    assert torch.equal(other.m2, stats.m2) and float(other.count) == 2
    assert float(RunningMeanStd(()).var) == 1.0  # before two samples: pass through unscaled


def test_rewards_are_divided_by_the_std_of_the_discounted_return():
    gamma = 0.9
    scaler = RewardScaler(num_envs=1, gamma=gamma)
    rewards = [1.0, 0.0, 2.0, 1.0, 0.0, 3.0]
    ended = [False, False, True, False, False, True]
    returns, g, out = [], 0.0, []
    for r, e in zip(rewards, ended, strict=True):
        g = gamma * g + r
        returns.append(g)
        out.append(float(scaler(torch.tensor([r]), torch.tensor([e]))))
        std = np.sqrt(np.var(returns, ddof=1) + 1e-8) if len(returns) > 1 else np.sqrt(1 + 1e-8)
        assert np.isclose(out[-1], r / std)
        if e:
            g = 0.0  # the next episode's return starts afresh
    # a NaN reward or a masked step changes nothing
    before = scaler.state_dict()["stats"]["m2"].clone()
    scaler(torch.tensor([float("nan")]), torch.tensor([False]))
    scaler(torch.tensor([5.0]), torch.tensor([False]), mask=torch.tensor([False]))
    assert torch.equal(scaler.stats.m2, before) and float(scaler.returns[0]) == 0.0
