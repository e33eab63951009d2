"""EpisodeQuota: an evaluation keeps a fixed share of each sub-env's episodes, so that parallel
envs do not favour short episodes (what taking the first N to finish would do)."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics

from envs.evaluation import EpisodeQuota, describe


class FixedLength(gymnasium.Env):
    """Episodes of ``length`` steps, reward 1 per step (the return is the length)."""

    observation_space = spaces.Box(0.0, 1.0, (1,), np.float32)
    action_space = spaces.Discrete(2)

    def __init__(self, length: int) -> None:
        self.length, self.t = length, 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return np.zeros(1, np.float32), {}

    def step(self, action):
        self.t += 1
        return np.zeros(1, np.float32), 1.0, self.t >= self.length, False, {}


def short_and_long(episodes: int) -> EpisodeQuota:
    env = RecordEpisodeStatistics(SyncVectorEnv([lambda: FixedLength(1), lambda: FixedLength(4)]))
    return EpisodeQuota(env, episodes)


def run(quota: EpisodeQuota, max_steps: int = 100) -> int:
    quota.reset(seed=0)
    steps = 0
    while not quota.filled and steps < max_steps:
        quota.step(np.zeros(quota.num_envs, dtype=np.int64))
        steps += 1
    return steps


def test_each_env_gives_its_share_so_short_episodes_are_not_favoured() -> None:
    quota = short_and_long(4)
    assert quota.quota == [2, 2]
    run(quota)
    result = quota.summary(greedy=True)
    # 2 episodes of length 1 and 2 of length 4; the first 4 to finish would be 1, 1, 1, 4 (mean 1.75)
    assert result["episodes"] == 4 and result["length_mean"] == 2.5 and result["return_mean"] == 2.5
    assert quota.returns == [[1.0, 1.0], [4.0, 4.0]]


def test_an_odd_count_goes_to_the_later_envs_and_later_episodes_are_ignored() -> None:
    quota = short_and_long(3)
    assert quota.quota == [1, 2]
    run(quota)
    assert quota.returns == [[1.0], [4.0, 4.0]]  # env 0 finished more meanwhile: its first counted
    result = quota.summary(greedy=False)
    assert describe(result) == "sampled: return 3.000 ± 1.414, length 3.0 over 3 episodes"


def test_zero_episodes_is_refused() -> None:
    with pytest.raises(ValueError, match="episodes must be >= 1"):
        short_and_long(0)
