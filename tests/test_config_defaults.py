"""One source of every default: a config dataclass and the YAML that Hydra composes agree, key for
key, so that the Python API trains as ``train.py`` does."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from agents.learner import LearnerConfig

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def dataclass_defaults(cls: type) -> dict:
    return {f.name: f.default for f in dataclasses.fields(cls)}


def test_learner_config_defaults_are_the_yaml():
    yaml = OmegaConf.to_container(OmegaConf.load(CONFIGS / "learner" / "default.yaml"))
    assert dataclass_defaults(LearnerConfig) == yaml
    assert LearnerConfig() == LearnerConfig(**yaml)


@pytest.mark.sb3
def test_recurrent_ppo_config_defaults_are_the_yaml():
    pytest.importorskip("sb3_contrib")
    from peers.recurrent_ppo import RecurrentPPOConfig

    # resolved: lstm_hidden_size follows core.hidden_size, which the same file sets
    algo = OmegaConf.to_container(OmegaConf.load(CONFIGS / "algo" / "rppo.yaml"), resolve=True)["algo"]
    assert algo.pop("name") == "rppo"
    assert dataclass_defaults(RecurrentPPOConfig) == algo


@pytest.mark.parametrize("path", sorted((CONFIGS / "core").glob("*.yaml")), ids=lambda p: p.stem)
def test_core_config_kwargs_are_the_core_classes_defaults(path):
    """configs/core/<name>.yaml's kwargs are its class's keyword defaults, so that ``ELSTM(d, n)``
    in the Python API is the core ``core=elstm`` builds."""
    import inspect

    from agents.registry import CORES

    cfg = OmegaConf.to_container(OmegaConf.load(path))
    params = inspect.signature(CORES[cfg["name"]].__init__).parameters
    defaults = {k: p.default for k, p in params.items() if k not in ("self", "input_size", "hidden_size")}
    assert cfg["kwargs"] == defaults
