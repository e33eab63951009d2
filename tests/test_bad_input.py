"""Bad input to train.py: each mistake gets a message that says what is wrong, and loses nothing.

The env classes below are gym ids ``module:Class``: in-process ``{__name__}:Class`` (whatever name
pytest imported this file under); from the CLI ``tests.test_bad_input:Class``, as train.py's folder
(the repository root) is on sys.path and ``tests`` is a namespace package there.
"""

from __future__ import annotations

import copy
import math
import re
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces

from agents.checkpoint import load_checkpoint, save_checkpoint
from agents.registry import CORES, RULES, make_core, make_rule
from envs import ENV_MAKERS, make_vector_env
from jobs import train
from tests.test_train import (
    ROOT,
    TINY,
    _restore_torch_threads,  # noqa: F401  (autouse: train() sets torch's threads)
    run_cli,
    scalars,
    tiny_cfg,
)

FAULT_AFTER = 40  # steps per env instance: past gymnasium's env checker, after some updates


class FixedEnv(gymnasium.Env):
    """A valid env: fixed observation (so the env checker sees determinism), episodes of 8 steps."""

    observation_space: spaces.Space = spaces.Box(-1.0, 1.0, (2,), np.float32)
    action_space: spaces.Space = spaces.Discrete(2)

    def __init__(self) -> None:
        self.observation_space.seed(0)
        self._obs = self.observation_space.sample()
        self.steps = 0  # over the instance's life, so faults come after the checker's few steps
        self.t = 0

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return copy.copy(self._obs), {}

    def step(self, action):
        self.steps += 1
        self.t += 1
        return copy.copy(self._obs), self.reward(), self.t >= 8, False, {}

    def reward(self) -> float:
        return float(self.t == 8)


class TextObsEnv(FixedEnv):
    observation_space = spaces.Text(max_length=4)


class SquareImageObsEnv(FixedEnv):  # no axis of an (8, 8, 8) image can be told the channel axis
    observation_space = spaces.Box(0, 255, (8, 8, 8), np.uint8)


class TupleActionEnv(FixedEnv):
    action_space = spaces.Tuple((spaces.Discrete(2), spaces.Discrete(3)))


class CrashEnv(FixedEnv):
    def reward(self) -> float:
        if self.steps > FAULT_AFTER:
            raise OSError("simulator lost")
        return super().reward()


class NaNRewardEnv(FixedEnv):
    def reward(self) -> float:
        return math.nan if self.steps == FAULT_AFTER else super().reward()


class NaNObsEnv(FixedEnv):
    def step(self, action):
        obs, reward, terminated, truncated, info = super().step(action)
        if self.steps == FAULT_AFTER:
            obs = np.full_like(obs, np.nan)
        return obs, reward, terminated, truncated, info


def gym_cfg(env_class: str, **values):
    return tiny_cfg("env=gym", **{"env.id": f"{__name__}:{env_class}", **values})


def listed(message: str) -> set[str]:
    """The names after "valid ...:" / "fit it:" in a message, as a set."""
    match = re.search(r"(?:valid \w+|fit it): ([\w, ]+)", message)
    assert match, message
    return set(match[1].split(", "))


# --- unknown names ------------------------------------------------------------------------------


@pytest.mark.parametrize("group", ["env", "algo", "core"])
def test_cli_unknown_choice_lists_the_options(group):
    result = run_cli(f"{group}=nosuch", "progress=false")
    assert result.returncode != 0
    assert f"'{group}/nosuch'" in result.stderr
    # Hydra's own message lists the group's configs, one per line after this header
    block = result.stderr.split(f"Available options in '{group}':", 1)[1]
    options = set(re.findall(r"^\t(\w+)$", block, re.M))
    assert options == {p.stem for p in (ROOT / "configs" / group).glob("*.yaml")}


@pytest.mark.parametrize(
    ("make", "valid"),
    [
        (lambda: make_core("nosuch", 4, 8), CORES),
        (lambda: make_rule("nosuch", make_core("elstm", 4, 8)), RULES),
        (lambda: make_vector_env({"name": "nosuch"}, num_envs=2, seed=0), ENV_MAKERS),
    ],
    ids=["core", "rule", "env"],
)
def test_api_unknown_name_lists_the_valid_names(make, valid):
    with pytest.raises(ValueError, match="'nosuch'") as error:
        make()
    assert listed(str(error.value)) == set(valid)


def test_rule_that_cannot_train_the_core_says_which_fit():
    with pytest.raises(ValueError, match="'kfrtrl' cannot train core ELSTM") as error:
        make_rule("kfrtrl", make_core("elstm", 4, 8))
    assert listed(str(error.value)) == {"rtrl", "uoro", "tbptt"}


# --- bad configs fail before training, naming the problem ---------------------------------------


@pytest.mark.parametrize(
    ("choices", "values", "error", "pattern"),
    [
        (("env=gym",), {"env.id": "NoSuchEnv-v0"}, ValueError, r"unknown gym env id 'NoSuchEnv-v0'"),
        (("algo=kfrtrl", "core=elstm"), {}, ValueError, r"'kfrtrl' cannot train core ELSTM.*fit it: rtrl"),
        # dense RTRL is exact but O(S^2 |θ|): a full-size LSTM is refused, with the alternatives
        (
            ("core=lstm",),
            {"core.hidden_size": 128, "num_envs": 16},
            ValueError,
            r"dense RTRL on LSTM .*UORO or TBPTT",
        ),
        ((), {"num_envs": 0}, ValueError, r"num_envs must be >= 1"),
        ((), {"env.delay": -1}, ValueError, r"delay must be an integer >= 0"),
        ((), {"algo.update": "sgd"}, ValueError, r"update must be 'a2c' or 'ppo', got 'sgd'"),
        ((), {"device": "tpu"}, ValueError, r"device must be auto, cpu or cuda, got 'tpu'"),
        ((), {"resume": "no/such/checkpoint.pt"}, FileNotFoundError, r"no/such/checkpoint\.pt"),
    ],
    ids=["gym-id", "rule-core", "dense-too-big", "num-envs", "recall-delay", "update", "device", "resume"],
)
def test_bad_config_is_named(tmp_path, choices, values, error, pattern):
    with pytest.raises(error, match=pattern):
        train(tiny_cfg(*choices, **values), run_dir=tmp_path)
    assert not (tmp_path / "checkpoint.pt").exists()


@pytest.mark.parametrize(
    ("env_class", "pattern"),
    [
        ("TextObsEnv", r"unsupported observation space Text\("),
        ("SquareImageObsEnv", r"unsupported observation space Box\(.*\(8, 8, 8\)"),
        ("TupleActionEnv", r"unsupported action space Tuple\("),
    ],
)
def test_unsupported_space_is_named(tmp_path, env_class, pattern):
    with pytest.raises(ValueError, match=pattern) as error:
        train(gym_cfg(env_class), run_dir=tmp_path)
    assert env_class in str(error.value)


def test_resume_into_a_different_core_fails_and_keeps_the_checkpoint(tmp_path):
    first = train(tiny_cfg(), run_dir=tmp_path / "first")
    before = Path(first["checkpoint"]).read_bytes()
    # a budget beyond the checkpoint's: at or below it there is nothing to train, and nothing is loaded
    values = {"core.hidden_size": 2 * TINY["core.hidden_size"], "total_steps": 2 * TINY["total_steps"]}
    cfg = tiny_cfg(**values, resume=first["checkpoint"])
    with pytest.raises(RuntimeError, match="size mismatch"):
        train(cfg, run_dir=tmp_path / "second")
    assert Path(first["checkpoint"]).read_bytes() == before


# --- faults during training ---------------------------------------------------------------------


def test_crashing_env_is_named_and_progress_is_saved(tmp_path):
    with pytest.raises(RuntimeError, match=rf"'gym:{__name__}:CrashEnv' crashed in step\(\)") as error:
        train(gym_cfg("CrashEnv", total_steps=10_000), run_dir=tmp_path)
    assert isinstance(error.value.__cause__, OSError)
    assert load_checkpoint(tmp_path / "checkpoint.pt")["counters"]["updates"] >= 1  # the updates before it


def test_cli_crashing_env_is_named(tmp_path):
    module = f"tests.{Path(__file__).stem}"
    result = run_cli(
        "env=gym",
        f"env.id={module}:CrashEnv",
        "num_envs=2",
        "core.hidden_size=16",
        f"log_dir='{tmp_path}'",
        "progress=false",
        "torch_threads=1",
    )
    assert result.returncode != 0
    assert f"'gym:{module}:CrashEnv' crashed in step()" in result.stderr
    assert "simulator lost" in result.stderr
    (run_dir,) = (tmp_path / "gym" / "rtrl-elstm").glob("seed0-*")
    assert load_checkpoint(run_dir / "checkpoint.pt")["counters"]["updates"] >= 1


@pytest.mark.parametrize("fed_back", [False, True], ids=["reward-not-fed-back", "reward-fed-back"])
def test_nan_reward_skips_the_update_and_training_goes_on(tmp_path, fed_back):
    # fed back, the NaN reward also reaches the core's input on the next step, not only the loss
    cfg = gym_cfg("NaNRewardEnv", total_steps=512, **{"policy.prev_reward": fed_back})
    summary = train(cfg, run_dir=tmp_path)
    assert summary["global_step"] == 512
    assert summary["skipped_updates"] >= 1  # reported, in the summary and in the log
    assert scalars(tmp_path).Scalars("train/skipped_updates")[-1].value == summary["skipped_updates"]
    checkpoint = load_checkpoint(summary["checkpoint"])
    assert all(torch.isfinite(p).all() for p in checkpoint["agent"].values())
    assert all(torch.isfinite(t).all() for t in checkpoint["rule_state"]["traces"].values())


@pytest.mark.parametrize("algo", ["rtrl", "stream"])
def test_nan_observation_names_the_env_and_keeps_the_checkpoint(tmp_path, algo):
    # Without the check, the NaN reaches the logits and sampling fails with torch's "probability
    # tensor contains either inf, nan or element < 0", which names nothing.
    cfg = tiny_cfg("env=gym", f"algo={algo}", **{"env.id": f"{__name__}:NaNObsEnv", "total_steps": 4096})
    message = r"'gym:[\w.]+:NaNObsEnv' returned a non-finite observation from step\(\) in sub-env\(s\) \[0"
    with pytest.raises(ValueError, match=message):
        train(cfg, run_dir=tmp_path)
    checkpoint = load_checkpoint(next(tmp_path.glob("checkpoint*.pt")))
    assert checkpoint["counters"]["global_step"] > 0
    assert all(torch.isfinite(p).all() for p in checkpoint["agent"].values())


def test_an_sb3_zip_given_as_our_checkpoint_says_what_it_is(tmp_path):
    import zipfile

    peer = tmp_path / "checkpoint.zip"  # the layout of the peer's checkpoint (algo=rppo)
    with zipfile.ZipFile(peer, "w") as archive:
        archive.writestr("data", "{}")
        archive.writestr("policy.pth", b"")
    with pytest.raises(ValueError, match=r"Stable-Baselines3 zip .*algo=rppo.*python -m peers.evaluate"):
        load_checkpoint(peer)
    ours = save_checkpoint({"x": torch.ones(2)}, tmp_path / "checkpoint.pt")  # also a zip inside
    assert load_checkpoint(ours)["x"].tolist() == [1.0, 1.0]
