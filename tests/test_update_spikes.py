"""benchmarks/update_spikes: the counts it prints are those of the run's TensorBoard scalars."""

import sys

import yaml
from torch.utils.tensorboard import SummaryWriter

from benchmarks import update_spikes

KL = [0.01, 2.5, 0.3, 40.0, 1.0]  # 1.0 is not above the threshold: 2 spikes of 5


def test_a_run_dir_gives_its_spikes_extremes_and_final_return(tmp_path, monkeypatch, capsys) -> None:
    run = tmp_path / "mc" / "seed3"
    run.mkdir(parents=True)
    config = {"env": {"name": "gym", "id": "MountainCarContinuousNoVel-v0"}, "algo": {"name": "rtrl"}}
    config.update(core={"name": "rtu"}, seed=3)
    config["algo"]["log_std_min"] = -3.0
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    with SummaryWriter(run) as writer:
        for step, kl in enumerate(KL):
            writer.add_scalar("train/approx_kl", kl, step)
            writer.add_scalar("train/grad_norm", 10.0 * step, step)
            writer.add_scalar("train/entropy", 1.0 - step, step)
            writer.add_scalar("rollout/ep_rew_mean", -float(step), step)
    row = update_spikes.spikes(run, threshold=1.0)
    assert row == {
        "spikes": 2,
        "updates": 5,
        "max_kl": 40.0,
        "max_grad_norm": 40.0,
        "min_entropy": -3.0,
    }
    monkeypatch.setattr(sys, "argv", ["update_spikes", str(tmp_path), "--agent-keys", "algo.log_std_min"])
    update_spikes.main()
    line = capsys.readouterr().out.splitlines()[-1].split()
    # final: the report's, the last 10% of 5 points (at least one)
    assert line[:4] == ["gym:MountainCarContinuousNoVel-v0", "rtrl-rtu[log_std_min=-3.0]", "3", "-4.000"]
    assert line[4:] == ["2", "/", "5", "40", "40", "-3.00"]
