"""The run scaffolding that our learner (agents/training.py) and the peer (peers/recurrent_ppo.py)
share, written once: where a run lives and what it runs on, its ``config.yaml``, seeding, the
stop flag, the progress bar, the hparams and the summary (the dict a job returns and the line it
prints)."""

from __future__ import annotations

import datetime
import math
import signal
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf
from torch.utils.tensorboard import SummaryWriter
from tqdm import tqdm

__all__ = [
    "StopFlag",
    "StopSignal",
    "check_tuned",
    "default_run_dir",
    "nothing_to_train",
    "open_writer",
    "progress_bar",
    "resolve_device",
    "run_summary",
    "seed_and_threads",
    "write_config",
    "write_hparams",
]


#: the algos a tuned preset's learner keys (LearnerConfig's) apply to
TUNED_ALGOS = ("rtrl", "kfrtrl", "uoro", "tbptt")


def check_tuned(cfg: DictConfig) -> None:
    """A tuned preset (``+tuned=<task>``, configs/tuned/) holds for its task and our learner only:
    a run whose env differs from the preset's ``tuned_env`` in any key it names, or whose algo is
    not one of ours, refuses to start rather than train with values searched elsewhere."""
    name, env = cfg.get("tuned"), cfg.get("tuned_env")
    if name is None:
        return
    if cfg.algo.name not in TUNED_ALGOS:
        raise ValueError(
            f"tuned={name} sets the PPO learner's keys, which algo={cfg.algo.name} does not take; "
            f"use one of {', '.join(TUNED_ALGOS)} or drop +tuned"
        )
    wrong = {k: cfg.env.get(k) for k, v in (env or {}).items() if cfg.env.get(k) != v}
    if wrong:
        raise ValueError(
            f"tuned={name} holds for env {dict(env)}, and this run's env has {wrong}: "
            "pick that env (see the preset's header) or drop +tuned"
        )


def resolve_device(name: str) -> torch.device:
    """auto → cuda when available, else cpu."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda") and not name.startswith("cuda:"):
        raise ValueError(f"device must be auto, cpu or cuda, got {name!r}")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("device=cuda was asked for, but torch sees no CUDA device")
    return torch.device(name)


def default_run_dir(cfg: DictConfig) -> Path:
    """<log_dir>/<env>/<algo>-<core>/seed<seed>-<time>, Hydra's run dir when Hydra runs us."""
    from hydra.core.hydra_config import HydraConfig

    if HydraConfig.initialized():
        return Path(HydraConfig.get().runtime.output_dir)
    # Microseconds: runs started in the same second (a shell loop with &) must not share a dir.
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    return Path(cfg.log_dir) / cfg.env.name / f"{cfg.algo.name}-{cfg.core.name}" / f"seed{cfg.seed}-{stamp}"


def write_config(run_dir: Path, cfg: DictConfig) -> None:
    """Create the run dir and write the (resolved) config into it as ``config.yaml``."""
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(cfg))


def seed_and_threads(cfg: DictConfig) -> None:
    """Seed torch and numpy with ``cfg.seed`` (so every rank draws the same initial weights), and
    give torch ``cfg.torch_threads`` CPU threads (0: torch's default)."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    if cfg.torch_threads > 0:
        torch.set_num_threads(cfg.torch_threads)


class StopSignal(Protocol):
    """What a job's loop checks between updates: ``signal`` is None until SIGINT/SIGTERM arrives."""

    signal: int | None


class StopFlag:
    """Turns SIGINT/SIGTERM into a flag the loop checks between updates (a :class:`StopSignal`)."""

    def __init__(self) -> None:
        self.signal: int | None = None
        self._old = {s: signal.signal(s, self._handle) for s in (signal.SIGINT, signal.SIGTERM)}

    def _handle(self, signum: int, frame: Any) -> None:
        self.signal = signum

    def restore(self) -> None:
        for s, handler in self._old.items():
            signal.signal(s, handler)


def open_writer(run_dir: Path, cfg: DictConfig) -> SummaryWriter:
    """The run's TensorBoard writer, the config already logged as text."""
    writer = SummaryWriter(str(run_dir))
    writer.add_text("config", "```\n" + OmegaConf.to_yaml(cfg) + "\n```")
    return writer


def progress_bar(cfg: DictConfig, initial: int, enabled: bool = True) -> tqdm:
    """A bar of env steps up to ``total_steps``, from ``initial`` (a resumed run's steps); shown
    when ``cfg.progress`` and ``enabled`` (rank 0 only)."""
    return tqdm(
        total=cfg.total_steps,
        initial=initial,
        disable=not (cfg.progress and enabled),
        unit="step",
        dynamic_ncols=True,
    )


def write_hparams(
    writer: SummaryWriter,
    cfg: DictConfig,
    env_name: str,
    rollout_len: int,
    update: str,
    lr: float,
    final: float,
) -> None:
    """TensorBoard's hparams of the run (the same keys for every algo) with its final mean return."""
    writer.add_hparams(
        {
            "env": env_name,
            "algo": cfg.algo.name,
            "core": cfg.core.name,
            "seed": cfg.seed,
            "rollout_len": rollout_len,
            "update": update,
            "lr": lr,
            "hidden_size": cfg.core.hidden_size,
            "num_envs": cfg.num_envs,
        },
        {"hparam/ep_rew_mean": final if math.isfinite(final) else 0.0},
        run_name=".",
    )


def run_summary(
    cfg: DictConfig,
    env_name: str,
    *,
    final: float,
    step: int,
    fps: float,
    updates: int,
    skipped_updates: int,
    run_dir: str | Path,
    checkpoint: str | Path,
    processes: int = 1,
    stop_signal: int | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """The summary a job returns; with ``report`` (rank 0) it also prints it as one line."""
    if report:
        over = "" if processes == 1 else f" over {processes} processes"
        stopped = "" if stop_signal is None else f" (stopped by {signal.Signals(stop_signal).name})"
        print(
            f"{env_name} {cfg.algo.name}-{cfg.core.name} seed {cfg.seed}: {step} steps, "
            f"ep_rew_mean {final:.3f}, {fps:.0f} steps/s{over}{stopped}; run in {run_dir}"
        )
    return {
        "ep_rew_mean": final,
        "global_step": step,
        "fps": fps,
        "updates": updates,
        "skipped_updates": skipped_updates,
        "processes": processes,
        "run_dir": str(run_dir),
        "checkpoint": str(checkpoint),
        "stop_signal": stop_signal,  # the signal that ended the run early (it is saved), else None
    }


def nothing_to_train(
    cfg: DictConfig,
    step: int,
    updates: int,
    skipped_updates: int = 0,
    run_dir: Path | None = None,
    processes: int = 1,
    report: bool = True,
) -> dict[str, Any] | None:
    """None when the checkpoint that ``resume=`` names, at ``step`` env steps, leaves steps to train.

    Otherwise its budget is spent: say so plainly (with ``report``) and return the job's summary
    without training or writing anything (no run dir, no events, the checkpoint left as it is).
    """
    if step < cfg.total_steps:
        return None
    if report:
        total = int(cfg.total_steps)
        print(f"checkpoint at {step:,} steps >= total_steps {total:,}: nothing to train ({cfg.resume})")
    return run_summary(
        cfg,
        cfg.env.name,
        final=float("nan"),
        step=step,
        fps=0.0,
        updates=updates,
        skipped_updates=skipped_updates,
        run_dir=run_dir if run_dir is not None else Path(cfg.resume).parent,
        checkpoint=cfg.resume,
        processes=processes,
        report=False,
    )
