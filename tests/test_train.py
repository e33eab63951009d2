"""End to end: train.py's Hydra configs, CLI, run directory, logs, resume, signals and learning."""

from __future__ import annotations

import math
import re
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from agents.checkpoint import load_checkpoint
from jobs import train

ROOT = Path(__file__).resolve().parents[1]
SB3_TAGS = (
    "rollout/ep_rew_mean",
    "rollout/ep_len_mean",
    "time/fps",
    "train/policy_loss",
    "train/value_loss",
    "train/entropy",
    "train/grad_norm",
    "train/learning_rate",
    "train/explained_variance",
)
# One torch thread: on a shared 2-core runner more threads oversubscribe and run several times slower.
TINY = {"total_steps": 256, "num_envs": 2, "core.hidden_size": 16, "torch_threads": 1, "progress": False}
SUMMARY = re.compile(
    r"^(?P<env>\S+) (?P<run>\S+) seed (?P<seed>\d+): (?P<steps>\d+) steps, .*; run in (?P<dir>.+)$"
)


def make_cfg(*choices: str, **values: Any) -> DictConfig:
    """Compose configs/config.yaml as the CLI would: group choices, then values set by dotted key."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=list(choices))
    for key, value in values.items():
        OmegaConf.update(cfg, key, value)  # after composing, so paths need no override-grammar quoting
    return cfg


def tiny_cfg(*choices: str, **values: Any) -> DictConfig:
    return make_cfg(*choices, **{**TINY, **values})


def run_cli(*args: str, timeout: float = 180, **kwargs: Any) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "train.py", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        **kwargs,
    )


def summary_lines(stdout: str) -> list[re.Match]:
    return [m for m in map(SUMMARY.match, stdout.splitlines()) if m]


def scalars(run_dir: str | Path) -> EventAccumulator:
    return EventAccumulator(str(run_dir)).Reload()


def adam_steps(checkpoint: Mapping[str, Any]) -> int:
    return max(int(s["step"]) for s in checkpoint["optimizer"]["state"].values())


def optimizer_steps_per_update(cfg: DictConfig) -> int:
    """PPO steps the optimiser once per epoch and minibatch of whole environments."""
    if cfg.algo["update"] == "a2c":  # cfg.algo.update is DictConfig's own update() method
        return 1
    return cfg.algo.num_epochs * min(cfg.algo.num_minibatches, cfg.num_envs)


@pytest.fixture(autouse=True)
def _restore_torch_threads():
    # train() sets the process-wide thread count; other test modules share this process
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


# --- Hydra composition --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "algo", "core"),
    [
        ((), "rtrl", "elstm"),
        (("algo=kfrtrl",), "kfrtrl", "rhn"),
        (("algo=uoro",), "uoro", "rhn"),
        (("algo=tbptt",), "tbptt", "elstm"),
        (("algo=tbptt", "core=rhn"), "tbptt", "rhn"),
        (("core=rhn", "algo=tbptt"), "tbptt", "rhn"),
        (("algo=kfrtrl", "core=elstm"), "kfrtrl", "elstm"),
    ],
    ids=lambda v: " ".join(v) or "defaults" if isinstance(v, tuple) else v,
)
def test_each_algo_picks_its_core_and_the_cli_core_wins(overrides, algo, core):
    cfg = make_cfg(*overrides)
    assert (cfg.env.name, cfg.algo.name, cfg.core.name) == ("recall", algo, core)
    # the shared learner defaults are merged into every algo
    assert {"rollout_len", "update", "lr", "gamma"} <= set(cfg.algo)


def test_kfrtrl_holds_its_lr_for_100k_steps_then_decays_to_0_and_the_others_keep_it():
    # configs/algo/kfrtrl.yaml says why; a run of <= 100k steps keeps a constant lr (test_learner)
    kf = make_cfg("algo=kfrtrl").algo
    assert (kf.lr_decay_after, kf.lr_final) == (100_000, None)
    for algo in ("rtrl", "tbptt", "uoro"):
        assert make_cfg(f"algo={algo}").algo.lr_decay_after is None, algo


@pytest.mark.parametrize(
    "env", sorted(p.stem for p in (Path(__file__).parents[1] / "configs" / "env").glob("*.yaml"))
)
def test_env_configs_describe_the_task_never_the_learner(env):
    # One set of learner defaults for every task: a task that tunes the learner for itself hides
    # what a user's own task would get.
    configs = Path(__file__).parents[1] / "configs"
    cfg = make_cfg(f"env={env}")
    assert cfg.algo == {**OmegaConf.load(configs / "learner" / "default.yaml"), "name": "rtrl"}
    assert cfg.policy == OmegaConf.load(configs / "config.yaml").policy


# --- the CLI ------------------------------------------------------------------------------------


def test_cli_run_writes_resolved_config_sb3_logs_and_checkpoint(tmp_path):
    result = run_cli(
        "env=recall",
        "algo=rtrl",
        "total_steps=512",
        "num_envs=4",
        f"log_dir='{tmp_path}'",
        "progress=false",
        "torch_threads=1",
        "checkpoint_every=${num_envs}",  # an interpolation, so that "resolved" can fail
    )
    assert result.returncode == 0, result.stderr
    (line,) = summary_lines(result.stdout)
    run_dir = Path(line["dir"])
    assert run_dir.parent == tmp_path / "recall" / "rtrl-elstm"
    assert re.fullmatch(r"seed0-\d{8}-\d{6}-\d{6}", run_dir.name)
    assert (line["run"], line["steps"]) == ("rtrl-elstm", "512")

    text = (run_dir / "config.yaml").read_text()
    assert "${" not in text
    saved = OmegaConf.create(text)
    assert (saved.total_steps, saved.num_envs, saved.checkpoint_every) == (512, 4, 4)
    assert (saved.env.name, saved.algo.name, saved.core.name) == ("recall", "rtrl", "elstm")

    assert list(run_dir.glob("events.out.tfevents.*"))
    events = scalars(run_dir)
    assert set(SB3_TAGS) <= set(events.Tags()["scalars"])
    steps_per_update = 4 * saved.algo.rollout_len
    assert [e.step for e in events.Scalars("time/fps")] == list(
        range(steps_per_update, 513, steps_per_update)
    )

    counters = load_checkpoint(run_dir / "checkpoint.pt")["counters"]
    assert counters == {"global_step": 512, "updates": 512 // steps_per_update, "skipped_updates": 0}


def test_runs_started_together_get_their_own_dirs(tmp_path):
    """Two identical runs started in the same second (a shell loop with &) must not share a dir."""
    args = ["env=recall", "total_steps=64", "num_envs=4", f"log_dir='{tmp_path}'", "progress=false"]
    procs = [
        subprocess.Popen([sys.executable, "train.py", *args], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    dirs = {line["dir"] for proc in procs for line in summary_lines(proc.communicate(timeout=180)[0])}
    assert all(proc.returncode == 0 for proc in procs)
    assert len(dirs) == 2
    for run_dir in dirs:  # each dir's event files come from one process (the pid in their names)
        assert len({f.name.split(".")[4] for f in Path(run_dir).glob("events.out.tfevents.*")}) == 1


def test_cli_multirun_makes_one_run_dir_per_algo(tmp_path):
    result = run_cli(
        "-m",
        "algo=rtrl,tbptt",
        "total_steps=256",
        "num_envs=2",
        f"log_dir='{tmp_path}'",
        "progress=false",
        "torch_threads=1",
    )
    assert result.returncode == 0, result.stderr
    assert sorted(m["run"] for m in summary_lines(result.stdout)) == ["rtrl-elstm", "tbptt-elstm"]
    for algo in ("rtrl", "tbptt"):
        (run_dir,) = (tmp_path / "recall" / f"{algo}-elstm").glob("seed0-*")
        assert OmegaConf.load(run_dir / "config.yaml").algo.name == algo
        assert load_checkpoint(run_dir / "checkpoint.pt")["counters"]["global_step"] == 256


# --- every env family and every rule trains end to end ------------------------------------------

IMAGE = {"total_steps": 64}  # two updates: the CNNs are slow on CPU
SMOKE = [
    pytest.param(("env=recall",), {}, None, id="recall"),
    pytest.param(("env=gym",), {"env.id": "CartPole-v1"}, None, id="gym-CartPole"),
    pytest.param(("env=popgym",), {}, "popgym", marks=pytest.mark.popgym, id="popgym"),
    pytest.param(
        ("env=atari",), {"env.frame_stack": 1, **IMAGE}, "ale_py", marks=pytest.mark.atari, id="atari"
    ),
    pytest.param(
        ("env=procgen",),
        {"env.game": "maze", "env.distribution_mode": "memory", **IMAGE},
        "procgen",
        marks=pytest.mark.procgen,
        id="procgen-maze",
    ),
    pytest.param(("algo=rtrl", "core=rtu"), {}, None, id="rtrl-rtu"),
    pytest.param(("algo=rtrl", "core=gru"), {}, None, id="rtrl-gru-dense"),
    pytest.param(("algo=kfrtrl",), {}, None, id="kfrtrl-rhn"),
    pytest.param(("algo=uoro",), {}, None, id="uoro-rhn"),
    pytest.param(("algo=uoro", "core=lstm"), {}, None, id="uoro-lstm"),
    pytest.param(("algo=tbptt",), {}, None, id="tbptt-elstm"),
    pytest.param(
        ("algo=tbptt", "core=gru"), {"algo.update": "a2c", "algo.optimizer": "rmsprop"}, None, id="tbptt-a2c"
    ),
]


@pytest.mark.parametrize(("choices", "values", "needs"), SMOKE)
def test_smoke(tmp_path, capsys, choices, values, needs):
    if needs:
        pytest.importorskip(needs)
    cfg = tiny_cfg(*choices, **values)
    summary = train(cfg, run_dir=tmp_path)

    steps_per_update = cfg.num_envs * cfg.algo.rollout_len
    updates = math.ceil(cfg.total_steps / steps_per_update)
    assert summary["global_step"] == updates * steps_per_update
    assert (summary["updates"], summary["skipped_updates"]) == (updates, 0)
    (line,) = summary_lines(capsys.readouterr().out)
    assert line["run"] == f"{cfg.algo.name}-{cfg.core.name}"
    assert line["env"].startswith(cfg.env.name)

    checkpoint = load_checkpoint(summary["checkpoint"])
    assert all(torch.isfinite(p).all() for p in checkpoint["agent"].values())
    assert adam_steps(checkpoint) == updates * optimizer_steps_per_update(cfg)  # every update applied
    image = cfg.env.name in ("atari", "procgen")
    assert image == any(k.startswith("encoder.conv") for k in checkpoint["agent"])  # CNN for pixels


# --- resume -------------------------------------------------------------------------------------


def test_resume_continues_counting_in_a_new_run_dir(tmp_path):
    first = train(tiny_cfg(total_steps=512, num_envs=4), run_dir=tmp_path / "first")
    before = (tmp_path / "first" / "checkpoint.pt").read_bytes()

    cfg = tiny_cfg(total_steps=1024, num_envs=4, resume=first["checkpoint"], log_dir=str(tmp_path / "logs"))
    second = train(cfg)  # its default run dir, under log_dir

    assert Path(second["run_dir"]).parent == tmp_path / "logs" / "recall" / "rtrl-elstm"
    assert second["global_step"] == 1024 and first["global_step"] == 512
    assert second["updates"] == 2 * first["updates"]
    assert (tmp_path / "first" / "checkpoint.pt").read_bytes() == before  # the source is left alone
    # the optimiser's state came along too, not only the counters
    per_update = optimizer_steps_per_update(cfg)
    assert adam_steps(load_checkpoint(second["checkpoint"])) == second["updates"] * per_update
    logged = [e.step for e in scalars(second["run_dir"]).Scalars("time/fps")]
    assert logged[0] == 512 + 4 * cfg.algo.rollout_len and logged[-1] == 1024


def test_resume_past_the_budget_trains_nothing_and_says_so(tmp_path, capsys):
    first = train(tiny_cfg(total_steps=512, num_envs=4), run_dir=tmp_path / "first")
    capsys.readouterr()
    checkpoint = Path(first["checkpoint"])
    before = {p.name: p.read_bytes() for p in checkpoint.parent.iterdir() if p.is_file()}
    # at the budget and below it; into a new run dir, and into the checkpoint's own (as the suite does)
    for total, run_dir in ((512, tmp_path / "second"), (256, tmp_path / "second"), (256, checkpoint.parent)):
        summary = train(tiny_cfg(total_steps=total, num_envs=4, resume=str(checkpoint)), run_dir=run_dir)
        said = f"checkpoint at 512 steps >= total_steps {total}: nothing to train ({checkpoint})\n"
        assert capsys.readouterr().out == said
        assert summary["global_step"] == 512 and summary["updates"] == first["updates"]
        assert summary["checkpoint"] == str(checkpoint) and math.isnan(summary["ep_rew_mean"])
    assert not (tmp_path / "second").exists()  # no run dir, no events
    assert {p.name: p.read_bytes() for p in checkpoint.parent.iterdir() if p.is_file()} == before


def test_cli_resume_past_the_budget_exits_cleanly(tmp_path):
    first = train(tiny_cfg(total_steps=1024, num_envs=4), run_dir=tmp_path / "first")
    proc = run_cli(
        f"resume='{first['checkpoint']}'", "total_steps=1000", f"log_dir='{tmp_path}'", "progress=false"
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("checkpoint at 1,024 steps >= total_steps 1,000: nothing to train")
    assert "nan" not in proc.stdout and not summary_lines(proc.stdout)


# --- signals ------------------------------------------------------------------------------------


def wait_for(condition: Callable[[], Any], proc: subprocess.Popen, timeout: float) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        if proc.poll() is not None:
            pytest.fail(f"train.py exited early ({proc.returncode}): {proc.communicate()[1][-3000:]}")
        time.sleep(0.1)
    pytest.fail(f"timed out after {timeout} s")


def catches_sigterm(pid: int) -> bool:
    """train() installs its handlers just after opening the event file; a signal sent in between
    would kill it. /proc's SigCgt mask says when they are in place (Linux; elsewhere assume so)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True
    mask = int(re.search(r"^SigCgt:\s*([0-9a-f]+)$", status, re.M)[1], 16)
    return bool(mask >> (signal.SIGTERM - 1) & 1)


def signalled_run(tmp_path: Path, sig: signal.Signals, *args: str) -> tuple[int, str, str]:
    """train.py on a long recall job, sent ``sig`` once its first run is logging and its handlers
    are in place; (exit status, stdout, stderr)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "train.py",
            *args,
            "total_steps=1000000000",
            "num_envs=4",
            "core.hidden_size=32",
            f"log_dir='{tmp_path}'",
            "progress=false",
            "torch_threads=1",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: list(tmp_path.glob("recall/rtrl-elstm/seed0-*/events.out.tfevents.*")), proc, 60)
        wait_for(lambda: catches_sigterm(proc.pid), proc, 10)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return proc.returncode, out, err


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=lambda s: s.name)
def test_signal_stops_with_summary_and_checkpoint(tmp_path, sig):
    returncode, out, err = signalled_run(tmp_path, sig)
    assert returncode == 0, err
    (line,) = summary_lines(out)
    assert f"(stopped by {sig.name})" in line[0]
    checkpoint = load_checkpoint(Path(line["dir"]) / "checkpoint.pt")  # weights_only
    assert checkpoint["counters"]["global_step"] == int(line["steps"])  # saved at the stop
    assert all(torch.isfinite(p).all() for p in checkpoint["agent"].values())


def test_a_signal_ends_a_sweep_rather_than_scoring_the_cut_short_run(tmp_path):
    # Under -m, a stopped job returning its partial return would be scored by the sweeper (Optuna
    # took a 15k-step return as a finished trial's) and the next job started: the sweep ends instead.
    returncode, out, err = signalled_run(tmp_path, signal.SIGTERM, "-m", "seed=0,1")
    assert returncode == 128 + signal.SIGTERM, err[-3000:]
    (line,) = summary_lines(out)
    assert "(stopped by SIGTERM)" in line[0]
    checkpoint = load_checkpoint(Path(line["dir"]) / "checkpoint.pt")
    assert checkpoint["counters"]["global_step"] == int(line["steps"])  # saved at the stop
    assert not list(tmp_path.glob("recall/rtrl-elstm/seed1-*"))  # the next job never started


# --- learning -----------------------------------------------------------------------------------

# Calibrated on the memory task as configured when measured (recall delay 8, 4 cues, rollout_len 16,
# rtrl-elstm, 16 envs; chance 0.25, max 1), pinned here so that changed defaults cannot move it.
# Seeds 0-8: hidden 64 and lr 3e-3 reach 0.9 by 12-16k steps, bar one seed stuck near 0.75 (3 of 4
# cues): hence 0.6 at 20k. The stock settings reach 0.9 by 24-58k steps (one seed 92k) and hold it
# after 100k, bar brief dips (to 0.5-0.85, 0-2% of the time), one of which can fall on the last
# update: so the test takes the median of the last quarter of the run, not the final value.
CALIBRATED = {
    "env.delay": 8,
    "algo.rollout_len": 16,
    "algo.lr": 0.001,
    "algo.ent_coef": 0.01,
    "core.hidden_size": 128,
    "num_envs": 16,
    "seed": 0,
    # calibrated with the per-tensor Adam; with fused Adam (the default since issue 17) and
    # ent_coef 0.01 this seed settles on one action before it remembers (the fragility that made
    # 0.05 the shared ent_coef), and stays at chance
    "algo.fused_optimizer": False,
}
FAST = {**CALIBRATED, "core.hidden_size": 64, "algo.lr": 0.003, "total_steps": 20480}
SLOW = {**CALIBRATED, "total_steps": 400_000}


@pytest.mark.parametrize(
    ("values", "threshold"),
    [
        pytest.param(FAST, 0.6, id="fast"),
        pytest.param(SLOW, 0.9, marks=pytest.mark.slow, id="400k-steps"),
    ],
)
def test_learns_the_recall_task(tmp_path, values, threshold):
    cfg = make_cfg(**{"torch_threads": 1, "progress": False, **values})
    summary = train(cfg, run_dir=tmp_path)
    curve = [(e.step, round(e.value, 2)) for e in scalars(tmp_path).Scalars("rollout/ep_rew_mean")]
    last_quarter = [v for step, v in curve if step > 0.75 * cfg.total_steps]
    assert statistics.median(last_quarter) >= threshold, (summary, curve[:: max(1, len(curve) // 20)])
