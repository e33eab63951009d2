"""A finished cell's final checkpoint evaluated the way rl-zoo publishes: its greedy policy.

A suite may declare how (``evaluate: {episodes: 20, seed: 100, mode: greedy}``). Its cells are
then evaluated as they finish, before they are archived, so the evaluation outlives the run dir
(an archive keeps no checkpoint to evaluate later). ``python -m benchmarks.evaluate_suite`` does
the same for the finished cells of any suite, by hand.

Each result is kept in the run dir's ``evaluation.json``, keyed by mode, episodes and seed, and
stamped with the checkpoint's modification time: a checkpoint written since is evaluated again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from agents.checkpoint import checkpoint_name, write_atomically
from envs.evaluation import MODES
from report.records import EVALUATION_FILE

__all__ = ["EvaluationSpec", "evaluate_run", "parse_evaluation"]


@dataclasses.dataclass(frozen=True)
class EvaluationSpec:
    """How a suite evaluates its finished cells: episodes, the evaluation envs' seed (not
    training's) and the mode (``greedy``, ``sampled`` or ``both``; envs/evaluation.py's MODES)."""

    episodes: int = 20
    seed: int = 100
    mode: str = "greedy"

    def __post_init__(self) -> None:
        if not isinstance(self.episodes, int) or self.episodes < 1:
            raise ValueError(f"evaluate.episodes must be an integer >= 1, got {self.episodes!r}")
        if not isinstance(self.seed, int):
            raise ValueError(f"evaluate.seed must be an integer, got {self.seed!r}")
        if self.mode not in MODES:
            raise ValueError(f"evaluate.mode must be one of {', '.join(MODES)}, got {self.mode!r}")


def parse_evaluation(raw: Any, where: str) -> EvaluationSpec:
    """A suite's ``evaluate:`` entry (a mapping of EvaluationSpec's fields) checked."""
    fields = {f.name for f in dataclasses.fields(EvaluationSpec)}
    if not isinstance(raw, Mapping) or set(raw) - fields:
        raise ValueError(f"{where}: a mapping of {', '.join(sorted(fields))}, got {raw!r}")
    try:
        return EvaluationSpec(**raw)
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from None


def evaluate_run(run_dir: str | Path, spec: EvaluationSpec) -> list[dict[str, Any]]:
    """The evaluations ``spec`` asks of the run's final checkpoint (one per mode): from
    ``evaluation.json`` where it holds this mode, episode count and seed for this very checkpoint,
    else run (our ``checkpoint.pt`` by agents.evaluate, the peer's zip by peers.evaluate) and stored."""
    run_dir = Path(run_dir)
    cfg = OmegaConf.load(run_dir / "config.yaml")
    checkpoint = run_dir / checkpoint_name(cfg.algo.name)
    stamp = checkpoint.stat().st_mtime_ns
    store = run_dir / EVALUATION_FILE
    results = json.loads(store.read_text()) if store.is_file() else {}
    out = []
    for greedy in MODES[spec.mode]:
        key = f"{'greedy' if greedy else 'sampled'}-{spec.episodes}ep-seed{spec.seed}"
        if results.get(key, {}).get("checkpoint_mtime_ns") != stamp:
            if cfg.algo.name == "rppo":  # the peer's SB3 zip; needs the sb3 extra
                from peers.evaluate import evaluate
            else:
                from agents.evaluate import evaluate
            result = evaluate(checkpoint, episodes=spec.episodes, greedy=greedy, seed=spec.seed)
            results[key] = {**result, "checkpoint_mtime_ns": stamp}
            write_atomically(store, lambda f: f.write(json.dumps(results, indent=2).encode()))
        out.append(results[key])
    return out
