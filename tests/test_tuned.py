"""Tuned presets (configs/tuned/, ``+tuned=<task>``): they compose with train.py's config, set learner
keys only, hold for their own env alone, label their runs ``+tuned``; and the sweeper config that
re-runs their search composes and gets the job's objective back."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from agents.learner import LearnerConfig
from agents.runs import check_tuned
from report.runs import agent_label

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ROOT / "configs"
#: preset -> the env overrides of its task (as each preset's header gives them)
PRESETS = {
    "cartpole_novel": ["env=novel"],
    "pendulum_novel": ["env=novel", "env.id=PendulumNoVel-v1"],
    "repeat_previous_easy": ["env=popgym", "env.id=RepeatPrevious", "env.difficulty=Easy"],
}
#: preset -> its search's sweeper: tuned_box adds normalize_obs, which needs flat float observations
SWEEPER = {"cartpole_novel": "tuned_box", "pendulum_novel": "tuned_box", "repeat_previous_easy": "tuned"}


def composed(*overrides: str, hydra: bool = False):
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=list(overrides), return_hydra_config=hydra)


def flat(cfg) -> dict:
    """Every leaf of a config by its dotted key."""
    out = {}

    def walk(node, prefix):
        if isinstance(node, dict) and node:
            for k, v in node.items():
                walk(v, f"{prefix}{k}.")
        else:
            out[prefix[:-1]] = node

    walk(OmegaConf.to_container(cfg), "")
    return out


def test_every_preset_file_is_listed_here():
    assert sorted(p.stem for p in (CONFIGS / "tuned").glob("*.yaml")) == sorted(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_composes_sets_learner_keys_only_and_keeps_the_env(name):
    env = PRESETS[name]
    plain, tuned = flat(composed(*env)), flat(composed(*env, f"+tuned={name}"))
    changed = {k for k in plain.keys() | tuned.keys() if plain.get(k) != tuned.get(k)}
    learner_keys = {f"algo.{f.name}" for f in dataclasses.fields(LearnerConfig)}
    assert changed - learner_keys <= {"tuned", "tuned_env"} | {k for k in tuned if k.startswith("tuned_env.")}
    assert tuned["tuned"] == name
    assert {k: v for k, v in plain.items() if k.startswith("env.")} == {
        k: v for k, v in tuned.items() if k.startswith("env.")
    }
    # the command line still wins over the preset
    assert flat(composed(*env, f"+tuned={name}", "algo.lr=0.123"))["algo.lr"] == 0.123


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_says_whether_it_was_searched_and_how_to_search(name):
    text = (CONFIGS / "tuned" / f"{name}.yaml").read_text()
    first, status = text.splitlines()[:2]
    assert first == "# @package _global_"
    values = yaml.safe_load(text)["algo"]
    defaults = dataclasses.asdict(LearnerConfig())
    if status.startswith("# NOT YET SEARCHED"):
        assert all(value == defaults[key] for key, value in values.items())
    else:  # a searched preset names its trials and the seeds its values were checked on
        assert status.startswith("# SEARCHED") and "trials" in status and "seeds" in status, status
        assert any(value != defaults[key] for key, value in values.items())
    command = f"python train.py -m hydra/sweeper={SWEEPER[name]} +tuned={name} {' '.join(PRESETS[name])}"
    assert command in text


@pytest.mark.parametrize("name", PRESETS)
def test_a_preset_refuses_another_env_or_algo_and_its_runs_are_labelled(name):
    cfg = composed(*PRESETS[name], f"+tuned={name}")
    check_tuned(cfg)
    assert agent_label(OmegaConf.to_container(cfg)) == "rtrl-elstm+tuned"
    assert agent_label(OmegaConf.to_container(composed(*PRESETS[name]))) == "rtrl-elstm"
    other = {
        "cartpole_novel": "env.id=PendulumNoVel-v1",
        "pendulum_novel": "env.id=CartPoleNoVel-v1",
        "repeat_previous_easy": "env.difficulty=Medium",
    }[name]
    with pytest.raises(ValueError, match=f"tuned={name} holds for env"):
        check_tuned(composed(*PRESETS[name], other, f"+tuned={name}"))
    with pytest.raises(ValueError, match="algo=stream"):
        check_tuned(composed("algo=stream", *PRESETS[name], f"+tuned={name}"))


@pytest.mark.parametrize("name", PRESETS)
def test_the_sweeper_config_composes_over_learner_keys(name):
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    cfg = composed(f"hydra/sweeper={SWEEPER[name]}", f"+tuned={name}", *PRESETS[name], hydra=True)
    sweeper = cfg.hydra.sweeper
    assert sweeper._target_.endswith("OptunaSweeper") and sweeper.direction == "maximize"
    learner_keys = {f"algo.{f.name}" for f in dataclasses.fields(LearnerConfig)}
    assert set(sweeper.params) <= learner_keys
    assert sweeper.params["algo.lr"] == "tag(log, interval(1e-4, 3e-3))"
    # normalize_obs is searched only where the learner accepts it (flat float Box observations)
    assert ("algo.normalize_obs" in sweeper.params) == (SWEEPER[name] == "tuned_box")


def test_a_two_trial_search_gets_each_jobs_final_return(tmp_path):
    # train.py's main() returns the summary's ep_rew_mean: the best value Optuna reports is one
    # of the trials' printed returns. Catches a main() that returns None (Optuna fails the trial).
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    args = [
        "-m", "hydra/sweeper=tuned_box", "+tuned=cartpole_novel", "env=novel", "total_steps=256",
        "num_envs=2", "core.hidden_size=16", "progress=false", f"log_dir={tmp_path}",
        "hydra.sweeper.n_trials=2", "torch_threads=1",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    returns = [
        float(line.split("ep_rew_mean ")[1].split(",")[0])
        for line in done.stdout.splitlines()
        if "ep_rew_mean" in line
    ]
    assert len(returns) == 2
    best = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())["best_value"]
    assert best == pytest.approx(max(returns), abs=1e-3)


def test_a_trial_over_several_seeds_scores_their_mean(tmp_path):
    # trial_seeds=[0,1]: each trial trains seed 0 then seed 1 in <trial dir>/seed<k>, and Optuna
    # gets the mean of their final returns (a one-seed objective rewards a lucky seed).
    pytest.importorskip("hydra_plugins.hydra_optuna_sweeper")
    args = [
        "-m", "hydra/sweeper=tuned_box", "+tuned=cartpole_novel", "env=novel", "total_steps=256",
        "num_envs=2", "core.hidden_size=16", "progress=false", f"log_dir={tmp_path}",
        "hydra.sweeper.n_trials=2", "torch_threads=1", "trial_seeds=[0,1]",
    ]  # fmt: skip
    done = subprocess.run(
        [sys.executable, "train.py", *args], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    jobs = [float(line.split("ep_rew_mean ")[1].split(",")[0]) for line in done.stdout.splitlines()
            if "ep_rew_mean" in line and not line.startswith("trial:")]  # fmt: skip
    trials = [
        float(line.split("ep_rew_mean ")[1]) for line in done.stdout.splitlines() if line.startswith("trial:")
    ]
    assert len(jobs) == 4 and len(trials) == 2
    assert trials == pytest.approx([(jobs[0] + jobs[1]) / 2, (jobs[2] + jobs[3]) / 2], abs=1e-3)
    best = yaml.safe_load((tmp_path / "optimization_results.yaml").read_text())["best_value"]
    assert best == pytest.approx(max(trials), abs=1e-3)
    configs = sorted(tmp_path.glob("gym/*/seed0-*/seed*/config.yaml"))
    assert len(configs) == 4
    assert sorted(yaml.safe_load(c.read_text())["seed"] for c in configs) == [0, 0, 1, 1]
    assert all(yaml.safe_load(c.read_text())["trial_seeds"] is None for c in configs)


def test_trial_seeds_must_be_distinct_and_not_resume():
    from jobs import train_trial

    for bad in ([], [0, 0]):
        with pytest.raises(ValueError, match="distinct seeds"):
            train_trial(composed(f"trial_seeds={bad}".replace(" ", "")))
    with pytest.raises(ValueError, match="drop one of them"):
        train_trial(composed("trial_seeds=[0,1]", "resume=nowhere.pt"))
