"""The RecurrentPPO peer (algo=rppo): the SB3 VecEnv adapter, train.py's outputs, seeding, errors."""

from __future__ import annotations

import importlib
import signal
import sys
from collections.abc import Callable
from importlib.util import find_spec
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import numpy as np
import pytest
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers.vector import RecordEpisodeStatistics
from hydra import compose, initialize_config_dir
from omegaconf import DictConfig, OmegaConf
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from envs import make_vector_env
from jobs import train
from peers.recurrent_ppo_config import check_zoo_env
from tests.test_train import SB3_TAGS as TAGS

ROOT = Path(__file__).resolve().parents[2]
needs_sb3 = pytest.mark.skipif(find_spec("sb3_contrib") is None, reason="needs the sb3 extra")
pytestmark = pytest.mark.sb3
# Small and fast: 2 epochs of 2 minibatches over 32 steps x 4 envs per update.
TINY = {
    "total_steps": 1024,
    "num_envs": 4,
    "core.hidden_size": 16,
    "algo.n_steps": 32,
    "algo.batch_size": 64,
    "algo.n_epochs": 2,
    "torch_threads": 1,
    "progress": False,
    "env.delay": 2,
}


def rppo_cfg(*choices: str, **values: Any) -> DictConfig:
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=["algo=rppo", *choices])
    for key, value in {**TINY, **values}.items():
        OmegaConf.update(cfg, key, value)
    return cfg


def recall(num_envs: int = 3, seed: int = 0, delay: int = 2):
    from peers.sb3_vec_env import SB3VecEnv

    return SB3VecEnv(make_vector_env({"name": "recall", "delay": delay}, num_envs=num_envs, seed=seed))


# --- the adapter ----------------------------------------------------------------------------------


@needs_sb3
def test_next_step_env_resets_in_the_same_step_with_raw_episode_stats() -> None:
    """CartPole (NEXT_STEP): a done row carries the final obs, already shows the next episode's
    first obs (the one gymnasium's reset step would give), and reports the true episode length
    while other rows' running episodes keep theirs (gymnasium's partial reset would zero them)."""
    from peers.sb3_vec_env import SB3VecEnv

    cfg = {"name": "gym", "id": "CartPole-v1"}
    venv = SB3VecEnv(make_vector_env(cfg, num_envs=3, seed=0))
    venv.seed(0)
    obs = venv.reset()
    lengths, returns, finished = np.zeros(3, int), np.zeros(3), 0
    rng = np.random.default_rng(0)
    for _ in range(200):
        actions = rng.integers(2, size=3)
        obs, rewards, dones, infos = venv.step(actions)
        lengths += 1
        returns += rewards
        for i in range(3):
            assert ("episode" in infos[i]) == dones[i]
        for i in np.flatnonzero(dones):
            assert infos[i]["episode"]["l"] == lengths[i]
            assert infos[i]["episode"]["r"] == pytest.approx(returns[i])
            assert infos[i]["TimeLimit.truncated"] is False  # CartPole falls well before 500 steps
            assert infos[i]["terminal_observation"].shape == (4,)
            assert not np.allclose(infos[i]["terminal_observation"], obs[i])
            assert np.all(np.abs(obs[i]) <= 0.05)  # CartPole's fresh start state
            lengths[i], returns[i] = 0, 0.0
            finished += 1
    assert finished >= 10


@needs_sb3
def test_next_step_env_matches_the_raw_env_around_an_episode_end() -> None:
    """Same seed, same actions: the adapter's obs equal the raw env's, and at an end the terminal
    obs is the raw final obs while the new obs is what the raw env's reset step returns."""
    from peers.sb3_vec_env import SB3VecEnv

    cfg = {"name": "gym", "id": "CartPole-v1"}
    raw = make_vector_env(cfg, num_envs=3, seed=4)
    venv = SB3VecEnv(make_vector_env(cfg, num_envs=3, seed=4))
    venv.seed(4)
    raw_obs, _ = raw.reset(seed=4)
    np.testing.assert_array_equal(venv.reset(), raw_obs)
    actions = np.zeros(3, dtype=np.int64)  # all push left: episodes end within ~10 steps
    for _ in range(30):
        obs, _, dones, infos = venv.step(actions)
        raw_obs, _, term, trunc, _ = raw.step(actions)
        np.testing.assert_array_equal(dones, term | trunc)
        if dones.any():
            break
        np.testing.assert_array_equal(obs, raw_obs)
    assert dones.any()
    for i in np.flatnonzero(dones):
        np.testing.assert_array_equal(infos[i]["terminal_observation"], raw_obs[i])
    np.testing.assert_array_equal(obs[~dones], raw_obs[~dones])
    reset_obs, *_ = raw.step(actions)  # gymnasium's NEXT_STEP reset step
    np.testing.assert_array_equal(obs[dones], reset_obs[dones])


@needs_sb3
def test_truncation_sets_time_limit_flag_and_terminal_observation() -> None:
    from benchmarks.common import SyntheticVectorEnv
    from peers.sb3_vec_env import SB3VecEnv

    venv = SB3VecEnv(RecordEpisodeStatistics(SyntheticVectorEnv(2, 3, episode_len=3)))
    venv.reset()
    for _ in range(2):
        _, _, dones, _ = venv.step(np.zeros(2, dtype=np.int64))
        assert not dones.any()
    _, _, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
    assert dones.all()
    for i in range(2):
        assert infos[i]["TimeLimit.truncated"] is True
        assert infos[i]["episode"]["l"] == 3
        assert infos[i]["terminal_observation"].shape == (3,)
    _, rewards, dones, _ = venv.step(np.zeros(2, dtype=np.int64))
    assert not dones.any() and np.all(rewards != 0)  # no reset step with reward 0 is shown to SB3


@needs_sb3
def test_same_step_env_passes_through() -> None:
    """Recall (SAME_STEP, delay 2: episodes of 4 steps): the 4th step is done and shows a new cue."""
    venv = recall(num_envs=2, delay=2)
    obs = venv.reset()
    for t in range(4):
        assert obs[:, :4].sum(axis=1).tolist() == ([1.0, 1.0] if t == 0 else [0.0, 0.0])  # cue shown
        obs, rewards, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
        assert dones.tolist() == [t == 3] * 2
    assert obs[:, :4].sum(axis=1).tolist() == [1.0, 1.0]
    for i in range(2):
        assert infos[i]["episode"] == {"r": rewards[i], "l": 4, "t": pytest.approx(0, abs=1)}
        assert infos[i]["TimeLimit.truncated"] is False
        assert "terminal_observation" not in infos[i]  # recall reports none, and only terminates


@needs_sb3
def test_seed_gives_reproducible_observations() -> None:
    def observations(seed: int) -> np.ndarray:
        venv = recall(num_envs=4, seed=123)  # the factory seed is overridden by venv.seed
        venv.seed(seed)
        out = [venv.reset()]
        for _ in range(12):
            out.append(venv.step(np.zeros(4, dtype=np.int64))[0])
        return np.stack(out)

    np.testing.assert_array_equal(observations(7), observations(7))
    assert not np.array_equal(observations(7), observations(8))


class _DictEnv(gymnasium.Env):
    """Dict observations {"pos": float (2,), "flag": Discrete(3)}; ends after 2 steps."""

    observation_space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,), np.float32), "flag": spaces.Discrete(3)})
    action_space = spaces.Discrete(2)
    metadata: ClassVar[dict[str, Any]] = {}

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action: int):
        self.t += 1
        return self._obs(), 1.0, self.t == 2, False, {}

    def _obs(self) -> dict[str, Any]:
        return {"pos": np.full(2, self.t / 2, np.float32), "flag": self.t}


@needs_sb3
def test_dict_observations_pass_through() -> None:
    from peers.sb3_vec_env import SB3VecEnv

    venv = SB3VecEnv(SyncVectorEnv([_DictEnv, _DictEnv], autoreset_mode=AutoresetMode.NEXT_STEP))
    obs = venv.reset()
    assert set(obs) == {"pos", "flag"} and obs["pos"].shape == (2, 2) and obs["flag"].tolist() == [0, 0]
    venv.step(np.zeros(2, dtype=np.int64))
    obs, _, dones, infos = venv.step(np.zeros(2, dtype=np.int64))
    assert dones.all() and obs["flag"].tolist() == [0, 0]  # already the next episode
    assert infos[0]["terminal_observation"]["flag"] == 2
    np.testing.assert_array_equal(infos[0]["terminal_observation"]["pos"], [1.0, 1.0])


@needs_sb3
def test_policy_follows_the_observation_space() -> None:
    from peers.sb3_policy import choose_policy

    assert choose_policy(spaces.Box(0, 1, (6,), np.float32)) == "MlpLstmPolicy"
    assert choose_policy(spaces.Box(0, 255, (4, 84, 84), np.uint8)) == "CnnLstmPolicy"
    assert choose_policy(_DictEnv.observation_space) == "MultiInputLstmPolicy"
    assert choose_policy(spaces.Box(0, 1, (6,), np.float32), "CnnLstmPolicy") == "CnnLstmPolicy"
    with pytest.raises(ValueError, match="MlpLstmPolicy"):
        choose_policy(spaces.Box(0, 1, (6,), np.float32), "LstmPolicy")


class _SmallImageEnv(gymnasium.Env):
    """MiniGrid's layout: a 7×7 uint8 view (channels-first, as our factory lays it out) and a
    direction."""

    observation_space = spaces.Dict(
        {"image": spaces.Box(0, 255, (3, 7, 7), np.uint8), "direction": spaces.Discrete(4)}
    )
    action_space = spaces.Discrete(3)

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        return self.observation_space.sample(), {}

    def step(self, action: int):
        return self.observation_space.sample(), 0.0, False, False, {}


@needs_sb3
def test_small_images_reach_sb3_as_vectors() -> None:
    # SB3's NatureCNN cannot read a 7×7 image ("Kernel size can't be greater than actual input
    # size" on MiniGrid): such parts go in as float32, which SB3 flattens into its MLP.
    from sb3_contrib import RecurrentPPO

    from peers.sb3_policy import small_images_as_vectors
    from peers.sb3_vec_env import SB3VecEnv

    env = small_images_as_vectors(SyncVectorEnv([_SmallImageEnv] * 2))
    assert env.single_observation_space["image"].dtype == np.float32
    assert env.single_observation_space["direction"] == spaces.Discrete(4)
    obs, _ = env.reset(seed=0)
    assert obs["image"].dtype == np.float32 and obs["image"].shape == (2, 3, 7, 7)
    model = RecurrentPPO(
        "MultiInputLstmPolicy", SB3VecEnv(env), n_steps=4, batch_size=8, policy_kwargs={"lstm_hidden_size": 8}
    )
    model.learn(8)
    big = SyncVectorEnv([lambda: gymnasium.make("CartPole-v1")])
    assert small_images_as_vectors(big) is big  # nothing to cast: the env itself


@needs_sb3
@pytest.mark.popgym
def test_multidiscrete_observations_build_the_lstm(tmp_path: Path) -> None:
    # POPGym CountRecall's MultiDiscrete([2, 2]): SB3 sized the LSTM with an np.int64 and torch refused
    pytest.importorskip("popgym")
    cfg = rppo_cfg(log_dir=str(tmp_path))
    cfg.env = OmegaConf.create({"name": "popgym", "id": "CountRecall", "difficulty": "Easy"})
    assert train(cfg)["global_step"] >= cfg.total_steps


@needs_sb3
@pytest.mark.minigrid
def test_dict_with_a_multidiscrete_part_builds_the_lstm(tmp_path: Path) -> None:
    # MiniGrid's grid as categories inside a Dict: SB3's CombinedExtractor summed numpy ints too
    pytest.importorskip("minigrid")
    cfg = rppo_cfg(log_dir=str(tmp_path))
    cfg.env = OmegaConf.create({"name": "gym", "id": "minigrid:MiniGrid-MemoryS7-v0"})
    assert train(cfg)["global_step"] >= cfg.total_steps


# --- train.py with algo=rppo -----------------------------------------------------------------------


@needs_sb3
def test_defaults_are_sb3_contribs() -> None:
    """configs/algo/rppo.yaml against RecurrentPPO's and its LSTM policy's signatures."""
    import inspect

    from sb3_contrib import RecurrentPPO
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

    cfg = rppo_cfg()
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        algo = compose("config", overrides=["algo=rppo", "env=gym"]).algo
    defaults = {
        **{k: p.default for k, p in inspect.signature(RecurrentPPO).parameters.items()},
        **{k: p.default for k, p in inspect.signature(RecurrentActorCriticPolicy).parameters.items()},
    }
    defaults["lr"] = defaults["learning_rate"]
    ours = {"lr_schedule": "constant", "clip_range_schedule": "constant", "normalize": False, "n_envs": None}
    for key, value in algo.items():
        if key not in ("name", "preset", "policy", "net_arch"):
            assert value == ours.get(key, defaults.get(key, "missing")), key
    assert cfg.core.name == "lstm" and algo.lstm_hidden_size == 256


@needs_sb3
def test_train_writes_run_dir_config_tags_and_checkpoint(tmp_path: Path) -> None:
    from sb3_contrib import RecurrentPPO

    summary = train(rppo_cfg(log_dir=str(tmp_path)))
    run_dir = Path(summary["run_dir"])
    assert run_dir.parent == tmp_path / "recall" / "rppo-lstm" and run_dir.name.startswith("seed0-")
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert saved.algo.name == "rppo" and saved.algo.lstm_hidden_size == 16 and saved.algo.ent_coef == 0.0
    events = EventAccumulator(str(run_dir)).Reload()
    assert set(TAGS) <= set(events.Tags()["scalars"])
    steps = [e.step for e in events.Scalars("time/fps")]
    assert steps == list(range(128, 1025, 128))  # one point per update of 32 x 4 steps
    assert summary["global_step"] == 1024 and summary["updates"] == 8
    assert 0.0 <= summary["ep_rew_mean"] <= 1.0
    ep_lens = [e.value for e in events.Scalars("rollout/ep_len_mean")]
    assert ep_lens == [4.0] * len(ep_lens)  # recall, delay 2: every episode is 4 steps
    model = RecurrentPPO.load(summary["checkpoint"], device="cpu")
    assert model.policy.lstm_actor.hidden_size == 16 and model.num_timesteps == 1024


@needs_sb3
def test_summary_has_the_keys_of_our_learners(tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        ours = compose(
            "config", overrides=["total_steps=32", "num_envs=2", "core.hidden_size=8", "progress=false"]
        )
    expected = train(ours, run_dir=tmp_path / "ours")
    summary = train(rppo_cfg(total_steps=128), run_dir=tmp_path / "rppo")
    assert set(summary) == set(expected)
    assert summary["fps"] > 0 and summary["processes"] == 1


@needs_sb3
def test_grad_norm_is_the_norm_before_clipping(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """train/grad_norm: the mean over minibatches of what clip_grad_norm_ returns (SB3 drops it)."""
    norms: list[float] = []
    clip = torch.nn.utils.clip_grad_norm_

    def recording_clip(*args: Any, **kwargs: Any) -> torch.Tensor:
        norms.append(float(clip(*args, **kwargs)))
        return torch.tensor(norms[-1])

    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", recording_clip)
    summary = train(rppo_cfg(total_steps=128), run_dir=tmp_path)
    (logged,) = EventAccumulator(summary["run_dir"]).Reload().Scalars("train/grad_norm")
    assert len(norms) >= 4  # 2 epochs of >= 2 minibatches
    assert logged.value == pytest.approx(np.mean(norms), rel=1e-5)


@needs_sb3
def test_same_seed_same_run_other_seed_not(tmp_path: Path) -> None:
    def run(seed: int, name: str) -> tuple[list[float], dict[str, torch.Tensor]]:
        summary = train(rppo_cfg(seed=seed, total_steps=512), run_dir=tmp_path / name)
        events = EventAccumulator(summary["run_dir"]).Reload()
        losses = [e.value for e in events.Scalars("train/policy_loss")]
        from sb3_contrib import RecurrentPPO

        return losses, RecurrentPPO.load(summary["checkpoint"], device="cpu").policy.state_dict()

    losses_a, params_a = run(3, "a")
    losses_b, params_b = run(3, "b")
    losses_c, params_c = run(4, "c")
    assert losses_a == losses_b
    for key in params_a:
        torch.testing.assert_close(params_a[key], params_b[key], rtol=0, atol=0)
    assert losses_a != losses_c
    assert any(not torch.equal(params_a[k], params_c[k]) for k in params_a)


@needs_sb3
def test_stop_signal_ends_the_run_cleanly_with_a_checkpoint(tmp_path: Path) -> None:
    from peers.recurrent_ppo import train_recurrent_ppo

    class StopAfter:
        """signal turns SIGTERM after some reads (a read per env step, per callback)."""

        def __init__(self, reads: int) -> None:
            self.reads = reads

        @property
        def signal(self) -> int | None:
            self.reads -= 1
            return int(signal.SIGTERM) if self.reads < 0 else None

    summary = train_recurrent_ppo(rppo_cfg(total_steps=4096), tmp_path, StopAfter(100))
    assert 0 < summary["global_step"] < 4096
    assert Path(summary["checkpoint"]).is_file()
    assert not list(tmp_path.glob(".checkpoint.zip.*"))  # no temporary file left behind


@needs_sb3
def test_resume_continues_weights_optimizer_and_steps(tmp_path: Path) -> None:
    from sb3_contrib import RecurrentPPO

    first = train(rppo_cfg(total_steps=512), run_dir=tmp_path / "first")
    second = train(rppo_cfg(total_steps=1024, resume=first["checkpoint"]), run_dir=tmp_path / "second")
    assert second["global_step"] == 1024 and second["updates"] == 8
    steps = [e.step for e in EventAccumulator(second["run_dir"]).Reload().Scalars("time/fps")]
    assert steps == list(range(640, 1025, 128))
    before = RecurrentPPO.load(first["checkpoint"], device="cpu")
    after = RecurrentPPO.load(second["checkpoint"], device="cpu")
    adam_steps = [int(s["step"]) for s in after.policy.optimizer.state_dict()["state"].values()]
    assert min(adam_steps) > max(
        int(s["step"]) for s in before.policy.optimizer.state_dict()["state"].values()
    )
    with pytest.raises(FileNotFoundError, match="does not exist"):
        train(rppo_cfg(resume=str(tmp_path / "missing.zip")), run_dir=tmp_path / "third")


@needs_sb3
def test_resume_past_the_budget_trains_nothing_and_says_so(tmp_path: Path, capsys) -> None:
    first = train(rppo_cfg(total_steps=256), run_dir=tmp_path / "first")
    capsys.readouterr()
    checkpoint = Path(first["checkpoint"])
    before = {p.name: p.read_bytes() for p in checkpoint.parent.iterdir() if p.is_file()}
    for total, run_dir in ((256, tmp_path / "second"), (128, checkpoint.parent)):
        summary = train(rppo_cfg(total_steps=total, resume=str(checkpoint)), run_dir=run_dir)
        said = f"checkpoint at 256 steps >= total_steps {total}: nothing to train ({checkpoint})\n"
        assert capsys.readouterr().out == said
        assert summary["global_step"] == 256 and summary["updates"] == first["updates"] == 2
        assert summary["checkpoint"] == str(checkpoint)
    assert not (tmp_path / "second").exists()
    assert {p.name: p.read_bytes() for p in checkpoint.parent.iterdir() if p.is_file()} == before


@needs_sb3
def test_bad_configs_name_the_fix() -> None:
    with pytest.raises(ValueError, match="core must be lstm"):
        train(rppo_cfg("core=gru"))
    with pytest.raises(ValueError, match=r"set core\.hidden_size"):
        train(rppo_cfg(**{"algo.lstm_hidden_size": 8}))
    cfg = rppo_cfg()
    OmegaConf.set_struct(cfg, False)
    cfg.algo.n_step = 4
    with pytest.raises(ValueError, match=r"valid keys: .*n_steps"):
        train(cfg)
    with pytest.raises(ValueError, match="MultiInputLstmPolicy"):
        train(rppo_cfg(**{"algo.policy": "lstm"}))


def test_missing_sb3_extra_says_how_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ["sb3_contrib", "stable_baselines3", *sys.modules]:
        if name.split(".")[0] in ("sb3_contrib", "stable_baselines3"):
            monkeypatch.setitem(sys.modules, name, None)  # importing it raises ImportError
    for name in ("peers.recurrent_ppo", "peers.sb3_policy", "peers.sb3_vec_env"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    with pytest.raises(ImportError, match=r'pip install -e "\.\[sb3\]"'):
        train(rppo_cfg())
    with pytest.raises(ImportError, match="algo=rppo needs"):
        importlib.import_module("peers.sb3_vec_env")


ZOO_IDS = ["CartPoleNoVel-v1", "PendulumNoVel-v1", "MountainCarContinuousNoVel-v0"]
# rl-baselines3-zoo hyperparams/ppo_lstm.yml (038ab16), in our key names; lin_X is X with schedule linear.
ZOO = {
    "CartPoleNoVel-v1": {"n_envs": 8, "n_steps": 32, "batch_size": 256, "gae_lambda": 0.8, "gamma": 0.98,
                         "n_epochs": 20, "ent_coef": 0.0, "lr": 0.001, "lr_schedule": "linear",
                         "clip_range": 0.2, "clip_range_schedule": "linear"},
    "PendulumNoVel-v1": {"n_envs": 4, "n_steps": 1024, "gae_lambda": 0.95, "gamma": 0.9, "n_epochs": 10,
                         "ent_coef": 0.0, "lr": 0.001, "clip_range": 0.2, "use_sde": True,
                         "sde_sample_freq": 4},
    "MountainCarContinuousNoVel-v0": {"normalize": True, "n_envs": 1, "batch_size": 256, "n_steps": 8,
                                      "gamma": 0.9999, "lr": 7.77e-05, "ent_coef": 0.00429,
                                      "clip_range": 0.1, "n_epochs": 10, "gae_lambda": 0.9,
                                      "max_grad_norm": 5, "vf_coef": 0.19, "use_sde": True,
                                      "log_std_init": -3.29, "ortho_init": False},
}  # fmt: skip


def zoo_algo(env_id: str, *overrides: str, algo: str = "rppo_zoo") -> DictConfig:
    """The composed, resolved config of ``algo`` on ``env=novel env.id=<env_id>``."""
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=["env=novel", f"env.id={env_id}", f"algo={algo}", *overrides])
    OmegaConf.resolve(cfg)
    return cfg


@pytest.mark.parametrize("env_id", ZOO_IDS)
def test_zoo_presets_compose_to_the_zoos_settings(env_id: str) -> None:
    """algo=rppo_zoo picks the zoo's preset by env.id; what the zoo leaves out stays sb3-contrib's."""
    cfg = zoo_algo(env_id)
    defaults = OmegaConf.to_container(zoo_algo(env_id, algo="rppo").algo)
    algo = OmegaConf.to_container(cfg.algo)
    assert algo["name"] == "rppo" and algo["preset"] == "zoo" and cfg.core.name == "lstm"
    for key, value in algo.items():
        want = ZOO[env_id].get(key, defaults[key] if key not in ("preset", "lstm_hidden_size") else value)
        assert value == want, key
    assert algo["lstm_hidden_size"] == 256  # sb3-contrib's, which the zoo keeps for these envs


@needs_sb3
def test_zoo_keys_are_recurrent_ppos_or_its_policys() -> None:
    """Every key of the peer's config is a RecurrentPPO or policy argument, or one of ours mapped
    onto them (model_kwargs), so a preset cannot set something SB3 never sees."""
    import inspect

    from sb3_contrib import RecurrentPPO
    from sb3_contrib.common.recurrent.policies import RecurrentActorCriticPolicy

    from peers.recurrent_ppo import RecurrentPPOConfig

    sb3 = set(inspect.signature(RecurrentPPO).parameters) | set(
        inspect.signature(RecurrentActorCriticPolicy).parameters
    )
    ours = {"name", "preset", "policy", "n_envs", "lr", "lr_schedule", "clip_range_schedule", "normalize"}
    for env_id in ZOO_IDS:
        algo = zoo_algo(env_id).algo
        assert set(algo) - ours <= sb3, set(algo) - ours - sb3
        kwargs = RecurrentPPOConfig.from_config(algo).model_kwargs()
        assert set(kwargs) <= set(inspect.signature(RecurrentPPO).parameters)
        assert set(kwargs["policy_kwargs"]) <= set(inspect.signature(RecurrentActorCriticPolicy).parameters)


def test_zoo_preset_for_an_env_it_does_not_tune_fails() -> None:
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=["env=novel", "env.id=CartPole-v1", "algo=rppo_zoo"])
    names = r"env\.id CartPoleNoVel-v1, PendulumNoVel-v1, MountainCarContinuousNoVel-v0; got .CartPole-v1."
    with pytest.raises(ValueError, match=names):
        check_zoo_env(cfg)


@needs_sb3
def test_zoo_mountaincar_normalizes_and_resumes_its_statistics(tmp_path: Path) -> None:
    """The zoo's normalize: true is SB3's VecNormalize; its statistics are saved beside the
    checkpoint and loaded on resume; the zoo's n_envs and linear schedules reach the model."""
    from stable_baselines3.common.vec_env import VecNormalize

    from peers.recurrent_ppo import NORMALIZE_NAME, LinearSchedule, make_model

    small = ("total_steps=64", "core.hidden_size=8", "progress=false", "torch_threads=1")
    cfg = zoo_algo("MountainCarContinuousNoVel-v0", *small)
    summary = train(cfg, run_dir=tmp_path / "run")
    stats = tmp_path / "run" / NORMALIZE_NAME
    assert summary["global_step"] == 64 and stats.is_file()
    saved = VecNormalize.load(str(stats), make_model(cfg, torch.device("cpu")).get_env().venv)
    assert saved.obs_rms.count > 64  # updated on every step (plus the resets)
    cfg.total_steps, cfg.resume = 96, str(tmp_path / "run" / "checkpoint.zip")
    assert train(cfg, run_dir=tmp_path / "resumed")["global_step"] == 96
    model = make_model(cfg, torch.device("cpu"))
    assert model.n_envs == 1 and isinstance(model.get_env(), VecNormalize)
    cart = zoo_algo("CartPoleNoVel-v1", *small)
    model = make_model(cart, torch.device("cpu"))
    assert model.n_envs == 8 and isinstance(model.learning_rate, LinearSchedule)
    assert model.learning_rate(0.5) == pytest.approx(0.0005) and model.clip_range(0.25) == pytest.approx(0.05)


def assert_same_training(cfg: DictConfig, sb3_venv: Callable[[int], Any]) -> None:
    """The peer trained by ``make_model`` (our env factory and SB3VecEnv) and RecurrentPPO on
    ``sb3_venv(n_envs)``, SB3's own pipeline, end with the same weights to the bit and the same
    episode returns (SB3's Monitor rounds them to 6 decimals). Both use our int-width features
    extractor, which plain SB3 needs for a MultiDiscrete observation (it is SB3's otherwise)."""
    from sb3_contrib import RecurrentPPO

    from agents.runs import seed_and_threads
    from peers.recurrent_ppo import RecurrentPPOConfig, make_model
    from peers.sb3_policy import EXTRACTORS, choose_policy

    seed_and_threads(cfg)
    ours = make_model(cfg, torch.device("cpu"))
    ours.learn(cfg.total_steps)
    seed_and_threads(cfg)
    venv = sb3_venv(ours.n_envs)
    rcfg = RecurrentPPOConfig.from_config(cfg.algo)
    policy = choose_policy(venv.observation_space, rcfg.policy)
    kwargs = rcfg.model_kwargs()
    kwargs["policy_kwargs"]["features_extractor_class"] = EXTRACTORS[policy]
    theirs = RecurrentPPO(policy, venv, seed=cfg.seed, device="cpu", **kwargs)
    theirs.learn(cfg.total_steps)
    returns = [[ep["r"] for ep in model.ep_info_buffer] for model in (ours, theirs)]
    assert len(returns[0]) >= ours.n_envs and returns[0] == pytest.approx(returns[1], abs=1e-4)
    mine, other = ours.policy.state_dict(), theirs.policy.state_dict()
    assert mine.keys() == other.keys()
    for key in mine:
        assert torch.equal(mine[key], other[key]), key


@needs_sb3
# CartPole: the zoo's linear schedules and many resets; Pendulum: gSDE and 4 time-limit truncations.
@pytest.mark.parametrize(("env_id", "n_steps"), [("CartPoleNoVel-v1", 32), ("PendulumNoVel-v1", 64)])
def test_the_peer_on_our_adapter_is_bit_identical_to_sb3_on_its_own_vec_env(
    env_id: str, n_steps: int
) -> None:
    """Our env factory and SB3VecEnv change nothing RecurrentPPO sees: the zoo's preset on SB3's
    own make_vec_env (DummyVecEnv, Monitor, the base env with our PositionsOnly) trains the same."""
    from stable_baselines3.common.env_util import make_vec_env

    from envs.masked import POSITIONS, PositionsOnly

    cfg = zoo_algo(
        env_id, "total_steps=1024", "core.hidden_size=16", f"algo.n_steps={n_steps}", "torch_threads=1"
    )
    base_id, keep = POSITIONS[env_id]
    assert_same_training(
        cfg,
        lambda n_envs: make_vec_env(
            base_id, n_envs=n_envs, seed=cfg.seed, wrapper_class=PositionsOnly, wrapper_kwargs={"keep": keep}
        ),
    )


@needs_sb3
@pytest.mark.popgym
# RepeatPrevious: a Discrete observation; CountRecall: a MultiDiscrete one (SB3 one-hot encodes both).
@pytest.mark.parametrize("task", ["RepeatPrevious", "CountRecall"])
def test_the_peer_at_its_defaults_on_popgym_is_bit_identical_to_sb3_on_gymnasium_make(task: str) -> None:
    """The popgym suite's peer (sb3-contrib's defaults) trains as an SB3 user's would, on
    ``make_vec_env("popgym-<task>Easy-v0")``: our factory passes these spaces through untouched."""
    pytest.importorskip("popgym")
    from stable_baselines3.common.env_util import make_vec_env

    cfg = rppo_cfg(total_steps=512)
    cfg.env = OmegaConf.create({"name": "popgym", "id": task, "difficulty": "Easy"})
    assert_same_training(
        cfg, lambda n_envs: make_vec_env(f"popgym-{task}Easy-v0", n_envs=n_envs, seed=cfg.seed)
    )


@needs_sb3
def test_zoo_reference_zeroes_what_our_env_drops_and_runs_the_preset() -> None:
    """benchmarks/zoo_reference: the zoo's observation is ours with the velocities put back as zeros,
    and a short run of a preset with VecNormalize (MountainCar) gives a row whose greedy return is
    the raw one (a 999-step episode that misses the flag costs 0.1 a² per step: in [-99.9, 0])."""
    from benchmarks.zoo_reference import run, zoo_envs

    theirs = zoo_envs("CartPoleNoVel-v1", 2, seed=3).reset()
    ours = make_vector_env({"name": "gym", "id": "CartPoleNoVel-v1"}, num_envs=2, seed=3).reset()[0]
    np.testing.assert_array_equal(theirs[:, [0, 2]], ours)
    assert not theirs[:, [1, 3]].any() and theirs[:, [0, 2]].all()
    env_id, seed, steps, training, greedy, _ = run(
        "MountainCarContinuousNoVel-v0", seed=0, steps=64, episodes=1, eval_seed=100
    )
    assert (env_id, seed, steps, training) == ("MountainCarContinuousNoVel-v0", "0", "64", "nan")
    assert -99.9 <= float(greedy) < 0
