"""peers.evaluate: the peer's checkpoint evaluated as agents.evaluate evaluates ours."""

from __future__ import annotations

import pickle
from importlib.util import find_spec
from pathlib import Path

import numpy as np
import pytest

from envs import make_vector_env
from jobs import train
from tests.peers.test_recurrent_ppo import rppo_cfg, zoo_algo

needs_sb3 = pytest.mark.skipif(find_spec("sb3_contrib") is None, reason="needs the sb3 extra")
pytestmark = [pytest.mark.sb3, needs_sb3]


def test_evaluates_a_trained_checkpoint_with_a_share_per_env(tmp_path: Path) -> None:
    from peers.evaluate import evaluate

    checkpoint = train(rppo_cfg(log_dir=str(tmp_path)))["checkpoint"]
    greedy = evaluate(checkpoint, episodes=6, greedy=True, num_envs=4, seed=3)
    assert greedy["episodes"] == 6 and greedy["greedy"] is True
    assert greedy["length_mean"] == 4.0  # recall at delay 2: every episode is 4 steps
    assert 0.0 <= greedy["return_mean"] <= 1.0
    assert evaluate(checkpoint, episodes=6, greedy=True, num_envs=4, seed=3) == greedy  # deterministic
    assert evaluate(checkpoint, episodes=2, num_envs=4)["episodes"] == 2  # fewer episodes than envs


def test_a_normalized_run_sees_its_saved_statistics_frozen(tmp_path: Path, monkeypatch) -> None:
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.running_mean_std import RunningMeanStd

    from peers.evaluate import evaluate
    from peers.recurrent_ppo import NORMALIZE_NAME

    small = ("total_steps=64", "core.hidden_size=8", "progress=false", "torch_threads=1")
    cfg = zoo_algo("MountainCarContinuousNoVel-v0", *small)
    checkpoint = Path(train(cfg, run_dir=tmp_path / "run")["checkpoint"])
    seen: list[np.ndarray] = []
    predict = RecurrentPPO.predict

    def spy(self, obs, *args, **kwargs):
        seen.append(np.array(obs, copy=True))
        return predict(self, obs, *args, **kwargs)

    monkeypatch.setattr(RecurrentPPO, "predict", spy)
    updates: list[int] = []
    monkeypatch.setattr(RunningMeanStd, "update", lambda self, x: updates.append(len(x)))
    result = evaluate(checkpoint, episodes=1, greedy=True, num_envs=1, seed=7)
    assert result["episodes"] == 1 and np.isfinite(result["return_mean"])
    assert len(seen) == 999 and updates == []  # one whole episode, statistics frozen
    with (tmp_path / "run" / NORMALIZE_NAME).open("rb") as f:
        saved = pickle.load(f)
    raw = make_vector_env(cfg.env, num_envs=1, seed=7).reset(seed=7)[0]
    expected = np.clip((raw - saved.obs_rms.mean) / np.sqrt(saved.obs_rms.var + saved.epsilon), -10, 10)
    np.testing.assert_allclose(seen[0], expected, rtol=1e-5)

    (tmp_path / "run" / NORMALIZE_NAME).unlink()
    with pytest.raises(FileNotFoundError, match=r"vecnormalize\.pkl"):
        evaluate(checkpoint, episodes=1, num_envs=1)


def test_bad_paths_and_our_checkpoints_say_what_to_do(tmp_path: Path) -> None:
    from peers.evaluate import evaluate

    with pytest.raises(FileNotFoundError, match="does not exist"):
        evaluate(tmp_path / "missing.zip")
    lone = tmp_path / "lone" / "checkpoint.zip"
    lone.parent.mkdir()
    lone.write_bytes(b"")
    with pytest.raises(FileNotFoundError, match=r"config\.yaml.*which env to rebuild"):
        evaluate(lone)
    ours = tmp_path / "ours" / "checkpoint.zip"
    ours.parent.mkdir()
    ours.write_bytes(b"")
    (ours.parent / "config.yaml").write_text("algo:\n  name: rtrl\n")
    with pytest.raises(ValueError, match=r"algo=rtrl run: use python -m agents\.evaluate"):
        evaluate(ours)
