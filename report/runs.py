"""Loading runs: the run directories under some folders, each one's curve of a tag from its
TensorBoard events, its env and agent labels from its ``config.yaml`` (or its directory names),
and the greedy evaluation of its final checkpoint where one was made (``evaluation.json``)."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from report.records import DEFAULT_TAG, EVALUATION_FILE, Run, training_seconds

__all__ = [
    "agent_label",
    "env_label",
    "find_run_dirs",
    "fresh_evaluations",
    "greedy_of",
    "greedy_return",
    "load_run",
    "load_runs",
    "read_run_files",
    "run_from_files",
]

EVENTS_GLOB = "events.out.tfevents.*"
DEFAULTS_PRESET = "sb3-contrib"  # algo.preset of the peer at its library's defaults: no mark in the label


def env_label(env: Mapping[str, Any], policy: Mapping[str, Any] | None = None) -> str | None:
    """Readable env label from a run's ``env`` (and ``policy``) config; None for unknown families.

    Known families follow their adapters' names (envs/*.py), so a label made here matches the
    ``env`` hparam a finished run writes.
    """
    name = env.get("name")
    if name == "popgym":
        label = f"popgym:{env.get('id')}{env.get('difficulty', '')}"
    elif name == "recall":
        label = f"recall:delay{env.get('delay')}-cues{env.get('num_cues')}"
        if env.get("distractors"):
            label += "-distractors"
    elif name in ("atari", "procgen"):
        label = f"{name}:{env.get('game')}"
        if name == "procgen":
            label += f"-{env.get('distribution_mode')}"
    elif name == "gym":
        label = f"gym:{env.get('id')}"
    elif name == "memory_chain":
        label = f"memory_chain:length{env.get('memory_length')}-bits{env.get('num_bits')}"
    else:
        return None
    if policy is not None and policy.get("prev_action") is False:
        label += " (no prev action)"
    return label


def agent_label(config: Mapping[str, Any], agent_keys: Sequence[str] = ()) -> str:
    """``<algo>-<core>`` (just ``<algo>`` without a core), then ``[key=value,...]`` for agent_keys.
    A streaming agent whose rule is not exact RTRL is ``stream-<rule>-<core>``.

    ``agent_keys`` are dotted config keys (e.g. ``algo.rollout_len``) that split agents further. A
    peer's ``algo.preset`` other than its library's defaults joins the algo: ``rppo-zoo-lstm`` is
    RecurrentPPO with rl-zoo's settings, ``rppo-lstm`` with sb3-contrib's defaults. A run whose
    learner keys came from a tuned preset (``+tuned=<task>``, which writes ``tuned: <task>``) is
    ``<algo>-<core>+tuned``: its own row, never the defaults' (a task has one preset, so the rows
    of several tasks line up as one agent).
    """
    algo = _get(config, "algo.name")
    preset = _get(config, "algo.preset")
    if preset not in (None, DEFAULTS_PRESET):
        algo = f"{algo}-{preset}"
    core = _get(config, "core.name")
    if algo == "stream" and _get(config, "algo.rule") not in (None, "rtrl"):
        algo = f"stream-{_get(config, 'algo.rule')}"  # stream-tbptt-rtu: the same core, another rule
    label = f"{algo}-{core}" if core is not None else str(algo)
    if _get(config, "tuned") is not None:
        label += "+tuned"
    extras = [f"{key.rsplit('.', 1)[-1]}={_get(config, key)}" for key in agent_keys]
    return label + (f"[{','.join(extras)}]" if extras else "")


def _get(config: Mapping[str, Any], dotted: str) -> Any:
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def find_run_dirs(dirs: Sequence[str | Path]) -> list[Path]:
    """Every directory under ``dirs`` (themselves included) that holds TensorBoard event files."""
    found: set[Path] = set()
    for root in map(Path, dirs):
        if not root.exists():
            raise FileNotFoundError(f"no such directory: {root}")
        found.update(p.parent for p in root.rglob(EVENTS_GLOB) if p.is_file())
    return sorted(found)


def load_run(path: str | Path, tag: str = DEFAULT_TAG, agent_keys: Sequence[str] = ()) -> Run | None:
    """Read one run directory; None when it never logged ``tag``."""
    files = read_run_files(path, tag)
    return None if files is None else run_from_files(Path(path), files, agent_keys)


def read_run_files(path: str | Path, tag: str = DEFAULT_TAG) -> dict[str, Any] | None:
    """What the report reads of a run directory, as plain data (report/archive.py stores it):
    ``config`` (config.yaml, or None), ``tag``, ``steps``, ``values``, ``seconds`` (since the first
    event), ``fps`` (the last ``time/fps``, or None), ``written_env`` (the hparams' env label, or
    None) and ``evaluations`` (the fresh entries of ``EVALUATION_FILE``). None without ``tag``."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    path = Path(path)
    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0})  # 0: keep every point
    acc.Reload()
    if tag not in acc.Tags()["scalars"]:
        return None
    points = sorted(acc.Scalars(tag), key=lambda p: p.step)  # stable: file order within a step
    fps = acc.Scalars("time/fps")[-1].value if "time/fps" in acc.Tags()["scalars"] else None
    start = acc.FirstEventTimestamp()
    config_file = path / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else None
    return {
        "config": config if isinstance(config, Mapping) else None,
        "tag": tag,
        "steps": [int(p.step) for p in points],
        "values": [float(p.value) for p in points],
        "seconds": [float(p.wall_time - start) for p in points],
        "fps": None if fps is None else float(fps),
        "written_env": _written_env(acc),
        "evaluations": fresh_evaluations(path),
    }


def run_from_files(path: Path, files: Mapping[str, Any], agent_keys: Sequence[str] = ()) -> Run:
    """The :class:`Run` of :func:`read_run_files`' data; ``path`` names it (a run dir or an archive)."""
    config = files["config"]
    if isinstance(config, Mapping) and isinstance(config.get("env"), Mapping):
        env = env_label(config["env"], config.get("policy")) or files["written_env"]
        agent, seed, source = agent_label(config, agent_keys), config.get("seed"), "config"
        if env is None:
            env = str(config["env"].get("name"))
    else:  # <env>/<agent>/seed<N>-<time>: train.py's layout
        env, agent, source = path.parent.parent.name, path.parent.name, "dirs"
        match = re.match(r"seed(\d+)", path.name)
        seed = int(match.group(1)) if match else None
    return Run(
        path=path,
        env=env,
        agent=agent,
        seed=None if seed is None else int(seed),
        steps=np.array(files["steps"], dtype=np.int64),
        values=np.array(files["values"], dtype=np.float64),
        seconds=training_seconds(np.array(files["seconds"], dtype=np.float64)),
        fps=files["fps"],
        source=source,
        tag=files["tag"],
        greedy=greedy_of(files["evaluations"]),
    )


def greedy_return(path: Path) -> float | None:
    """The greedy evaluation's mean return in the run dir's ``EVALUATION_FILE`` (of several, the
    one with the most episodes), None without one. An evaluation of an older checkpoint (its
    ``checkpoint_mtime_ns`` not the checkpoint's now) is stale and left out."""
    return greedy_of(fresh_evaluations(path))


def fresh_evaluations(path: Path) -> dict[str, Any]:
    """The entries of the run dir's ``EVALUATION_FILE`` made of its checkpoint as it is now (those
    without a ``checkpoint_mtime_ns`` too: written before stamps were kept); {} without the file."""
    file = path / EVALUATION_FILE
    if not file.is_file():
        return {}
    checkpoints = (path / "checkpoint.pt", path / "checkpoint.zip")
    stamps = {c.stat().st_mtime_ns for c in checkpoints if c.is_file()}
    return {
        key: result
        for key, result in sorted(json.loads(file.read_text()).items())
        if (stamp := result.get("checkpoint_mtime_ns")) is None or not stamps or stamp in stamps
    }


def greedy_of(evaluations: Mapping[str, Any]) -> float | None:
    """The mean return of the greedy evaluation with the most episodes, None without one."""
    greedy = [result for result in evaluations.values() if result.get("greedy")]
    if not greedy:
        return None
    return float(max(greedy, key=lambda v: v["episodes"])["return_mean"])


def _written_env(acc: Any) -> str | None:
    """The ``env`` hparam a finished run wrote (train.py's add_hparams), if any."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    try:
        content = acc.PluginTagToContent("hparams")["_hparams_/session_start_info"]
    except KeyError:
        return None
    hparams = plugin_data_pb2.HParamsPluginData.FromString(content).session_start_info.hparams
    return hparams["env"].string_value if "env" in hparams else None


def load_runs(
    dirs: Sequence[str | Path], tag: str = DEFAULT_TAG, agent_keys: Sequence[str] = ()
) -> list[Run]:
    """Every run under ``dirs`` that logged ``tag``.

    Raises:
        FileNotFoundError: a directory does not exist, or holds no run.
        ValueError: runs exist, but none logged ``tag``.
    """
    paths = find_run_dirs(dirs)
    if not paths:
        raise FileNotFoundError(
            f"no runs found under {', '.join(map(str, dirs))}: a run directory holds TensorBoard "
            f"event files ({EVENTS_GLOB}), as train.py writes them under <log_dir>/<env>/<algo>-<core>/"
        )
    runs = [run for path in paths if (run := load_run(path, tag, agent_keys)) is not None]
    if not runs:
        raise ValueError(f"none of the {len(paths)} runs under {', '.join(map(str, dirs))} logged {tag!r}")
    return runs
