"""Seconds to a return count training time: a run stopped and resumed loses its pause."""

from __future__ import annotations

from pathlib import Path
from unittest import mock

import numpy as np
from torch.utils.tensorboard import SummaryWriter

from report.records import PAUSE_SECONDS, training_seconds
from report.runs import load_run

START = 1_000_000.0


def test_a_run_that_never_stopped_keeps_its_times() -> None:
    wall = np.array([0.0, 1.0, 2.5, 3.0, 4.2, 5.0])
    np.testing.assert_array_equal(training_seconds(wall), wall)
    np.testing.assert_array_equal(training_seconds(np.array([3.0])), [3.0])


def test_a_pause_counts_as_one_median_gap() -> None:
    # 1 s per point, stopped for 5000 s after the fourth point
    wall = np.array([1.0, 2.0, 3.0, 4.0, 5004.0, 5005.0, 5006.0])
    np.testing.assert_array_equal(training_seconds(wall), [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0])


def test_a_slow_run_keeps_its_long_updates() -> None:
    # 30 s per point: a 100 s update is slow training (< 20 x the median), not a pause
    wall = np.cumsum([30.0, 30.0, 30.0, 100.0, 30.0, 30.0])
    np.testing.assert_array_equal(training_seconds(wall), wall)
    # and a gap under PAUSE_SECONDS is never a pause, however fast the run logs
    fast = np.concatenate([np.arange(0.0, 1.0, 0.01), [1.0 + PAUSE_SECONDS - 1]])
    np.testing.assert_array_equal(training_seconds(fast), fast)


def test_load_run_reports_seconds_without_the_pause(tmp_path: Path) -> None:
    # the first process logs steps 1k..10k, 2 s apart; the resumed one goes on 3 h later
    with mock.patch("time.time", return_value=START):
        writer = SummaryWriter(str(tmp_path))
    for i in range(20):
        wall = START + 2.0 * (i + 1) + (3 * 3600.0 if i >= 10 else 0.0)
        writer.add_scalar("rollout/ep_rew_mean", i / 16, 1000 * (i + 1), walltime=wall)
    writer.close()
    run = load_run(tmp_path)
    assert run is not None
    np.testing.assert_allclose(run.seconds, 2.0 * np.arange(1, 21))
    assert run.first_reach(1.0) == (17000, 34.0)  # i = 16, exact in float32
