"""What the report is given besides runs: thresholds (one number, or env label glob -> number) and
normalisation bounds (env label -> [low, high]), parsed from the command line or YAML."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

__all__ = ["Thresholds", "load_bounds", "parse_bounds", "parse_threshold_args", "thresholds_of"]

Thresholds = float | Mapping[str, float] | None


def thresholds_of(threshold: Thresholds) -> dict[str, float]:
    """glob -> threshold from a number (every env), a mapping of globs, or None (no env)."""
    if threshold is None:
        return {}
    pairs = threshold.items() if isinstance(threshold, Mapping) else [("*", threshold)]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for _, v in pairs):
        raise ValueError(f"threshold must be a number or map env label globs to numbers, got {threshold!r}")
    return {str(glob): float(value) for glob, value in pairs}


def parse_threshold_args(values: Sequence[str]) -> dict[str, float]:
    """``--threshold`` values (``X`` or ``GLOB=X``) -> glob -> threshold; a bare X goes last as ``*``."""
    globs: dict[str, float] = {}
    default = None
    for value in values:
        glob, sep, number = value.rpartition("=")
        try:
            parsed = float(number)
        except ValueError:
            raise ValueError(f"--threshold {value!r}: expected a number or GLOB=number") from None
        if not sep:
            if default is not None:
                raise ValueError(f"--threshold: two bare numbers ({default:g} and {value}); give one")
            default = parsed
        else:
            globs[glob] = parsed
    return {**globs, **({"*": default} if default is not None else {})}


def load_bounds(path: str | Path) -> dict[str, tuple[float, float]]:
    """A YAML mapping of env label -> [low, high], e.g. random-play and best returns, or a suite
    config that holds one under ``bounds``."""
    data = yaml.safe_load(Path(path).read_text()) or {}
    if isinstance(data, Mapping) and "tasks" in data:  # a suite config
        if "bounds" not in data:
            raise ValueError(f"{path}: no 'bounds' key")
        data = data["bounds"]
    return parse_bounds(data, str(path))


def parse_bounds(data: Any, where: str = "bounds") -> dict[str, tuple[float, float]]:
    """env label -> (low, high) from its YAML form; raises ValueError naming the bad entry."""
    if not isinstance(data, Mapping):
        raise ValueError(f"{where}: bounds must map env labels to [low, high], got {type(data).__name__}")
    bounds = {}
    for env, pair in data.items():
        numbers = isinstance(pair, Sequence) and len(pair) == 2
        if not (numbers and all(isinstance(v, int | float) and not isinstance(v, bool) for v in pair)):
            raise ValueError(f"{where}: bounds for {env!r} must be [low, high] numbers, got {pair!r}")
        if not pair[1] > pair[0]:
            raise ValueError(f"{where}: bounds for {env!r} must be [low, high] with high > low, got {pair!r}")
        bounds[str(env)] = (float(pair[0]), float(pair[1]))
    return bounds
