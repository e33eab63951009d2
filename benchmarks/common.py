"""Pieces shared by the learner-level benchmarks: a free synthetic vector env, a plain-text
table, paired ratios, learners built from the Hydra configs, and the run header.

Also the measuring helpers every benchmark uses: threads, load average, device-synchronised
timing and tensor sizes.
Every benchmark module sets OMP_WAIT_POLICY=PASSIVE itself, before it imports torch (see
benchmarks/rules.py for why); importing this module after torch is fine.
"""

from __future__ import annotations

import datetime
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv
from gymnasium.vector.utils import batch_space
from torch import Tensor

from agents.learner import Learner, LearnerConfig
from agents.policy import ActorCritic
from agents.registry import make_rule
from agents.rules import RuleState
from agents.stream import StreamConfig, StreamLearner, make_stream_networks

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


class SyntheticVectorEnv(VectorEnv):
    """A vector env that costs ~nothing: random float observations (B, obs_dim) drawn once into
    a small pool and cycled, Discrete(n_actions) actions, NEXT_STEP autoreset.

    ``episode_len`` None: episodes never end (one long episode, no resets). Otherwise every
    env truncates after ``episode_len`` steps (all at the same time), and the next step is
    the NEXT_STEP reset step (reward 0, the action ignored), as gymnasium's vector envs do.
    """

    metadata = {"autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012

    def __init__(
        self, num_envs: int, obs_dim: int, n_actions: int = 4, episode_len: int | None = None, seed: int = 0
    ) -> None:
        self.num_envs = num_envs
        self.single_observation_space = spaces.Box(-1.0, 1.0, (obs_dim,), np.float32)
        self.single_action_space = spaces.Discrete(n_actions)
        self.observation_space = batch_space(self.single_observation_space, num_envs)
        self.action_space = batch_space(self.single_action_space, num_envs)
        self.episode_len = episode_len
        rng = np.random.default_rng(seed)
        pool = 16
        self._obs = rng.uniform(-1, 1, (pool, num_envs, obs_dim)).astype(np.float32)
        self._rewards = rng.standard_normal((pool, num_envs)).astype(np.float32)
        self._false = np.zeros(num_envs, bool)
        self._i = 0
        self._t = 0
        self._pending = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._t, self._pending = 0, False
        return self._obs[0].copy(), {}

    def step(self, actions):
        self._i = (self._i + 1) % len(self._obs)
        obs, reward = self._obs[self._i].copy(), self._rewards[self._i].copy()
        trunc = self._false.copy()
        if self._pending:  # the NEXT_STEP reset step
            self._t, self._pending = 0, False
            reward[:] = 0.0
        elif self.episode_len is not None:
            self._t += 1
            if self._t >= self.episode_len:
                trunc[:] = True
                self._pending = True
        return obs, reward, self._false.copy(), trunc, {}


# --- learners from the configs ----------------------------------------------------------------


def compose_config(overrides: Sequence[str]):
    """The Hydra config of train.py with ``overrides`` (as on its command line)."""
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose(config_name="config", overrides=list(overrides))


def build_learner(overrides: Sequence[str], device: torch.device | str = "cpu"):
    """train.py's learner (``agents.training.build(cfg, device)``) for the config with ``overrides``; returns
    (learner, cfg). Seeds torch and numpy from ``cfg.seed`` first, as train.py does."""
    from agents.training import build

    cfg = compose_config(overrides)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    return build(cfg, torch.device(device)), cfg


def run_learner_steps(learner, min_steps: int) -> int:
    """``learner.update(learner.collect())`` until at least ``min_steps`` env steps; returns them."""
    start = learner.global_step
    while learner.global_step - start < min_steps:
        learner.update(learner.collect())
    return learner.global_step - start


# --- statistics and output --------------------------------------------------------------------


def paired_median_ratio(num: Sequence[float], den: Sequence[float]) -> float:
    """Median over pairs of num[i] / den[i] (samples taken side by side, so the load cancels)."""
    return statistics.median(a / b for a, b in zip(num, den, strict=True))


def format_table(header: Sequence[str], rows: Sequence[Sequence[str]], left: set[int] | None = None) -> str:
    """A plain-text table; columns in ``left`` are left-aligned, the others right-aligned.
    An empty row prints as a blank line (a group separator)."""
    left = {0} if left is None else left
    body = [r for r in rows if r]
    widths = [max(len(h), *(len(r[i]) for r in body)) if body else len(h) for i, h in enumerate(header)]

    def fmt(cells: Sequence[str]) -> str:
        pairs = enumerate(zip(cells, widths, strict=True))
        return "  ".join(c.ljust(w) if i in left else c.rjust(w) for i, (c, w) in pairs).rstrip()

    out = [fmt(header), fmt(["-" * w for w in widths])]
    out += [fmt(r) if r else "" for r in rows]
    return "\n".join(out)


# --- measuring ------------------------------------------------------------------------------


def default_threads() -> int:
    """The cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def load_average() -> str:
    """The 1-minute load average, to tell a busy machine (other jobs inflate the times)."""
    if not hasattr(os, "getloadavg"):
        return "load average unknown"
    return f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"


def sync_device(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], object], device: torch.device) -> float:
    """Wall seconds of fn(), with the device synchronised before and after."""
    sync_device(device)
    start = time.perf_counter()
    fn()
    sync_device(device)
    return time.perf_counter() - start


def tensor_bytes(tensors: list[Tensor]) -> int:
    """Σ numel·element_size."""
    return sum(t.numel() * t.element_size() for t in tensors)


def trace_bytes(rstate: RuleState) -> int:
    """Bytes of the traces a rule carries between chunks."""
    return tensor_bytes(list(rstate.traces.values()))


def state_bytes(rstate: RuleState) -> int:
    """Bytes of the core state."""
    return tensor_bytes([rstate.state])


def human_bytes(n: int) -> str:
    """1536 -> '1.5K'; 0 -> '0'."""
    if n == 0:
        return "0"
    value = float(n)
    for unit in ("B", "K", "M", "G"):
        if value < 1024 or unit == "G":
            return f"{value:.0f}{unit}" if unit == "B" else f"{value:.1f}{unit}"
        value /= 1024
    raise AssertionError("unreachable")


def header(extra: str = "", device: torch.device | str = "cpu") -> str:
    """torch version, threads, OMP policy and the load average: the first line of every run."""
    line = (
        f"torch {torch.__version__}, {device}, {torch.get_num_threads()} threads, "
        f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}; {load_average()}"
    )
    return f"{line}; {extra}" if extra else line


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub-flavoured markdown table (for the results files under benchmarks/results/)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def provenance(device: torch.device | str = "cpu") -> str:
    """Machine, date, commit and torch: the line a committed results file opens with, so that
    its numbers say where, when and from which code they came."""
    cpu = platform.processor() or platform.machine()
    if Path("/proc/cpuinfo").exists():
        names = [
            ln.split(":", 1)[1].strip()
            for ln in Path("/proc/cpuinfo").read_text().splitlines()
            if ln.startswith("model name")
        ]
        cpu = names[0] if names else cpu
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        try:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, check=True).stdout
        except (OSError, subprocess.CalledProcessError):
            return ""

    commit = git("rev-parse", "--short", "HEAD").strip() or "unknown"
    if git("status", "--porcelain", "--untracked-files=no").strip():
        commit += " (with uncommitted changes in the tree)"
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (
        f"{date}; {cpu}, {os.cpu_count()} CPUs, {device}; torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads; commit {commit}"
    )


class Stopwatch:
    """Wall time since construction, for the closing line."""

    def __init__(self) -> None:
        self.start = time.perf_counter()

    def __str__(self) -> str:
        return f"wall time {time.perf_counter() - self.start:.1f} s; {load_average()}"


def synthetic_learner(
    rule: str,
    m: int,
    batch: int,
    hidden: int,
    obs_dim: int,
    episode_len: int | None = None,
    seed: int = 0,
    **learner: Any,
) -> Learner:
    """An eLSTM learner (N = hidden, MLP encoder of width hidden) on the synthetic env; the same
    weights for every rule at the same seed. ``learner``: further LearnerConfig fields."""
    torch.manual_seed(seed)
    envs = SyntheticVectorEnv(batch, obs_dim, episode_len=episode_len, seed=seed)
    agent = ActorCritic(
        envs.single_observation_space,
        envs.single_action_space,
        core="elstm",
        hidden_size=hidden,
        mlp_hidden=[hidden],
    )
    cfg = LearnerConfig(rollout_len=m, **learner)
    return Learner(agent, make_rule(rule, agent.core), envs, cfg, torch.device("cpu"))


def synthetic_stream_learner(
    m: int, batch: int, hidden: int, obs_dim: int, episode_len: int | None = None, seed: int = 0
) -> StreamLearner:
    """Stream AC(λ) (agents/stream.py) with exact RTRL on eLSTM cores (N = hidden, MLP encoder of
    width hidden), ``m`` streaming steps per collect, on the synthetic env with B = ``batch``
    streams."""
    torch.manual_seed(seed)
    envs = SyntheticVectorEnv(batch, obs_dim, episode_len=episode_len, seed=seed)
    cfg = StreamConfig(rule="rtrl", rollout_len=m)
    core = {"name": "elstm", "hidden_size": hidden, "kwargs": {}}
    policy = {
        "encoder": "auto",
        "mlp_hidden": [hidden],
        "prev_action": True,
        "prev_reward": True,
        "start_flag": True,
    }
    agent, critic = make_stream_networks(
        core, policy, envs.single_observation_space, envs.single_action_space, cfg
    )
    return StreamLearner(agent, critic, envs, cfg, torch.device("cpu"))
