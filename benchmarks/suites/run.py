"""One suite cell's run, in whichever process the launcher gives it: train it (resuming its
checkpoint), mark it done, evaluate and archive it (benchmarks/suite.py's docstring gives the rules)."""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import math
import shutil
import signal
import time
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf

from benchmarks.suites.cells import ERROR_FILE, MARKER, Cell, archive_cell, cell_finished
from benchmarks.suites.config import CONFIGS
from benchmarks.suites.evaluation import evaluate_run
from benchmarks.suites.locks import lock_path, take_lock
from report.archive import load_archive

if TYPE_CHECKING:
    from agents.runs import StopFlag

__all__ = ["compose_cell", "config_drift", "keep_finished", "reset_stop", "run_cell"]

# Keys that say where and how a run ran, not what it trained: never drift.
_RUN_KEYS = frozenset({"log_dir", "resume", "progress", "device", "torch_threads", "checkpoint_every"})
# The learner's base values: a learner key added since a cell ran gave the old behaviour at its
# value here (the project's rule for a new key), so that is what the cell ran with.
LEARNER_DEFAULTS = CONFIGS / "learner" / "default.yaml"
# Holds and the schedule each delays: held past the run's budget with no final set, the value is
# constant, as it was before the hold existed (Learner.held), so such a run is unchanged.
_HOLDS = {"lr_decay_after": "lr_final", "ent_decay_after": "ent_coef_final"}
# Learner keys whose default changed after they were added: a config saved before the key trained
# at this value (what the code reads a missing key as), not at the base above.
_BEFORE_KEY: dict[str, Any] = {"log_std_min": None}
# Learner keys that act on Box actions only: on other tasks no value changes the run.
_BOX_ONLY = frozenset({"log_std_min"})

log = logging.getLogger(__name__)

# The signal that stopped a cell in this process, if any. A launcher worker (joblib's loky) takes
# cell after cell: once a SIGTERM or SIGINT aimed at it has stopped one, it must not start the next.
_stopped_by: int | None = None


def compose_cell(cell: Cell) -> DictConfig:
    """train.py's config for the cell, composed as the CLI would (inside a Hydra app or not)."""
    from hydra import compose, initialize_config_dir
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():  # inside the multirun app, whose search path is configs/
        return compose("config", overrides=list(cell.overrides))
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        return compose("config", overrides=list(cell.overrides))


def run_cell(cell: Cell, stop_file: Path | None = None) -> dict[str, Any]:
    """Train one cell (resuming its checkpoint if it has one) and mark it done if it finished.

    Returns ``{"status": "done" | "stopped" | "failed" | "busy", ...}``; never raises for a failed
    run, so that one bad cell does not cancel the others (joblib cancels pending jobs on an
    exception). Once SIGINT or SIGTERM has stopped a cell (saved, to resume), this process starts no
    other cell: "stopped" without training, so that a signalled worker or suite ends rather than
    going on; nor does any process once ``stop_file`` exists (the suite writes it on SIGTERM). A
    cell another live suite process holds (its lock file beside the run dir) is "busy": two
    overlapping slices of a suite never train one cell into one run dir.
    """
    if _not_started(cell, stop_file):
        return _stopped(cell)
    # From the lock on, SIGINT/SIGTERM outside train() are recorded, not fatal: the suite
    # signals the lock's holder, and a loky worker killed mid-cell would break the pool.
    with _signals_recorded() as flag:
        run_dir = Path(cell.run_dir)
        lock = lock_path(run_dir)
        holder = take_lock(lock)
        if holder is not None:  # another suite process (an overlapping slice) is training this cell
            print(f"suite cell {cell.task}/{cell.agent}/seed{cell.seed} skipped: {holder} runs it ({lock})")
            return {"status": "busy", "cell": cell.to_dict(), "holder": holder}
        try:
            # checked again under the lock: the suite signals the lock holders it finds after
            # writing the stop file, so a cell locked after that scan sees the file here
            if _not_started(cell, stop_file):
                return _stopped(cell)
            return _run_locked(cell, run_dir, flag)
        finally:
            lock.unlink(missing_ok=True)


def _not_started(cell: Cell, stop_file: Path | None) -> bool:
    """Whether this cell must not start: a signal stopped a cell here, or the suite was stopped."""
    if _stopped_by is None and not (stop_file is not None and stop_file.exists()):
        return False
    why = f"this worker got {signal.Signals(_stopped_by).name}" if _stopped_by else "the suite got SIGTERM"
    print(f"suite cell {cell.task}/{cell.agent}/seed{cell.seed} not started ({why})")
    return True


def _stopped(cell: Cell, signum: int | None = None) -> dict[str, Any]:
    signum = signum or _stopped_by or signal.SIGTERM
    return {"status": "stopped", "cell": cell.to_dict(), "signal": int(signum)}


@contextlib.contextmanager
def _signals_recorded() -> Iterator[StopFlag]:
    """SIGINT/SIGTERM become a flag (train()'s own StopFlag nests inside and restores this one),
    added to ``_stopped_by`` on the way out."""
    global _stopped_by
    from agents.runs import StopFlag

    flag = StopFlag()
    try:
        yield flag
    finally:
        flag.restore()
        _stopped_by = _stopped_by or flag.signal


def _run_locked(cell: Cell, run_dir: Path, flag: StopFlag) -> dict[str, Any]:
    global _stopped_by
    if cell_finished(cell):  # another slice finished it since this launch listed it
        return {"status": "done", "cell": cell.to_dict()}
    try:
        from agents.checkpoint import checkpoint_name
        from jobs import train

        cfg = compose_cell(cell)
        checkpoint = run_dir / checkpoint_name(cfg.algo.name)  # rppo: SB3's zip
        resumed = checkpoint.is_file() and _same_config(run_dir / "config.yaml", cfg)
        if resumed:
            cfg.resume = str(checkpoint)
        elif run_dir.exists():  # a stale or foreign partial run: its events would mix with ours
            shutil.rmtree(run_dir)
        if flag.signal is not None:  # signalled while the cell was being set up
            return _stopped(cell, flag.signal)
        print(f"suite cell {cell.task}/{cell.agent}/seed{cell.seed}{' (resumed)' if resumed else ''}")
        start = time.time()
        summary = train(cfg, run_dir)
        wall = time.time() - start
    except Exception:
        error = traceback.format_exc()
        log.error("suite cell %s/%s/seed%d failed:\n%s", cell.task, cell.agent, cell.seed, error)
        run_dir.mkdir(parents=True, exist_ok=True)
        (run_dir / ERROR_FILE).write_text(error)
        return {"status": "failed", "cell": cell.to_dict(), "error": error}
    if summary["global_step"] < cfg.total_steps:  # stopped by a signal: it resumes next time
        _stopped_by = summary.get("stop_signal") or _stopped_by
        return {"status": "stopped", "cell": cell.to_dict(), "summary": summary}
    record = {
        "cell": cell.to_dict(),
        "summary": summary,
        "wall_s": round(wall, 1),
        "resumed": resumed,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    (run_dir / ERROR_FILE).unlink(missing_ok=True)
    tmp = run_dir / f".{MARKER}.tmp"
    tmp.write_text(json.dumps(_finite(record), indent=2, default=str))
    tmp.replace(run_dir / MARKER)  # atomic: a marker is never half written
    keep_finished(cell)
    return {"status": "done", **record}


def keep_finished(cell: Cell) -> Path | None:
    """Evaluate a finished cell (where its suite declares ``evaluate:``) and archive it, so that
    both outlive its run dir; the archive's path, None if there is none. A failure is logged, not
    raised: the cell is done all the same, and the next report tries again."""
    where = f"{cell.task}/{cell.agent}/seed{cell.seed}"
    if cell.evaluate is not None and Path(cell.run_dir).is_dir():
        try:
            evaluate_run(cell.run_dir, cell.evaluate)  # cached in the run dir: cheap when done
        except Exception:
            log.warning("suite cell %s not evaluated:\n%s", where, traceback.format_exc())
    try:
        return archive_cell(cell)
    except Exception:
        log.warning("suite cell %s not archived:\n%s", where, traceback.format_exc())
        return None


def _finite(value: Any) -> Any:
    """``value`` with NaN and infinities as None, so that the marker is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def _same_config(path: Path, cfg: DictConfig) -> bool:
    """Whether the run saved at ``path`` had this config (``resume`` aside)."""
    if not path.is_file():
        return False
    saved = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    new = OmegaConf.to_container(cfg, resolve=True)
    saved.pop("resume", None)
    new.pop("resume", None)
    return saved == new


def reset_stop() -> None:
    """Forget a signal that stopped a cell here: a new launch from this process starts afresh."""
    global _stopped_by
    _stopped_by = None


def config_drift(cell: Cell) -> list[str]:
    """How the config a finished cell trained with differs from what its overrides compose to now:
    ``key: then -> now`` for each key both have with another value (a default changed since), []
    when none does. A key added since is no drift (a new key's default keeps the old behaviour by
    this project's rule), unless it is a learner key (``algo.*``) whose value now is not the one
    the cell ran at: an algo that later set it off its base value in configs/learner/default.yaml
    (algo=kfrtrl's ``lr_decay_after``), or a default changed after the key came (``log_std_min``:
    no floor before it) on a task where it acts. Where a run ran (log_dir, device, ...) never is
    drift."""
    config_file = Path(cell.run_dir) / "config.yaml"
    if config_file.is_file():
        then = OmegaConf.to_container(OmegaConf.load(config_file), resolve=True)
    elif cell.archive is not None and Path(cell.archive).is_file():
        then = load_archive(cell.archive)["config"]
    else:
        return []
    now = OmegaConf.to_container(compose_cell(cell), resolve=True)
    then = then or {}
    changed = [f"{key}: {old!r} -> {new!r}" for key, old, new in _differences(then, now, "")]
    added = _added_learner_keys(then.get("algo") or {}, now.get("algo") or {}, now["total_steps"], now["env"])
    return changed + added


def _added_learner_keys(
    then: dict[str, Any], now: dict[str, Any], total_steps: int, env: dict[str, Any]
) -> list[str]:
    """``algo.key: absent (then old) -> now`` for each learner key the cell's config lacks whose
    value now differs from the one the cell trained with (its base value, or the value before the
    key for a default changed since), unless it changes nothing in this run: a hold past the
    budget, or a Box-only key on a task whose actions are not a Box."""
    base = OmegaConf.to_container(OmegaConf.load(LEARNER_DEFAULTS), resolve=True)
    if not set(base) <= set(now):  # an algo not built on the learner's keys (the peer's)
        return []
    old = {**base, **_BEFORE_KEY}

    def idle(key: str) -> bool:
        if key in _HOLDS:
            return now[_HOLDS[key]] is None and now[key] >= total_steps
        return key in _BOX_ONLY and not _box_actions(json.dumps(env, sort_keys=True))

    return [
        f"algo.{key}: absent (then {old[key]!r}) -> {now[key]!r}"
        for key in sorted(set(now) - set(then))
        if key in base and now[key] != old[key] and not idle(key)
    ]


@functools.cache
def _box_actions(env_json: str) -> bool:
    """Whether the env config (as JSON, for the cache) acts in a Box; True when it cannot be built,
    so that a key it might change is still named."""
    import gymnasium

    from envs import make_vector_env

    try:
        envs = make_vector_env(json.loads(env_json), num_envs=1, seed=0)
    except Exception:  # not buildable here (a missing package): assume the key acts
        return True
    try:
        return isinstance(envs.single_action_space, gymnasium.spaces.Box)
    finally:
        envs.close()


def _differences(then: Any, now: Any, prefix: str) -> list[tuple[str, Any, Any]]:
    if isinstance(then, dict) and isinstance(now, dict):
        return [
            diff
            for key in sorted(set(then) & set(now), key=str)
            if not (not prefix and key in _RUN_KEYS)
            for diff in _differences(then[key], now[key], f"{prefix}{key}.")
        ]
    return [] if then == now else [(prefix.rstrip("."), then, now)]
