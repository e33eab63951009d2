"""Published references: results from papers and libraries that a suite declares beside its own
runs (``references:`` in ``configs/suite/<suite>.yaml``). The report prints them per env, marked as
published, and keeps them out of everything it computes (aggregate, bounds, targets)::

    references:
      - env: "gym:CartPoleNoVel-v1"      # the report's env label
        value: 500.0
        budget: 100_000                  # env steps of training behind the value (optional)
        agent: "RecurrentPPO, rl-zoo ppo_lstm"
        source: "rl-baselines3-zoo benchmark.md (one run; deterministic policy)"
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from report.records import Reference

__all__ = ["load_references", "parse_references", "references_markdown"]

_KEYS = {"env", "value", "budget", "agent", "source"}


def parse_references(raw: Any, where: str = "references") -> list[Reference]:
    """References from their YAML form (a list of mappings); raises ValueError naming the entry."""
    if not isinstance(raw, list):
        raise ValueError(f"{where}: references must be a list of mappings, got {type(raw).__name__}")
    references = []
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{at}: a reference is a mapping with env, value, agent and source")
        if unknown := sorted(set(entry) - _KEYS):
            raise ValueError(f"{at}: unknown key(s) {unknown}; valid keys: {sorted(_KEYS)}")
        if missing := sorted({"env", "value", "agent", "source"} - set(entry)):
            raise ValueError(f"{at}: missing {missing}")
        value, budget = entry["value"], entry.get("budget")
        if not _is_number(value) or not math.isfinite(value):
            raise ValueError(f"{at}: value must be a number, got {value!r}")
        if budget is not None and not (_is_number(budget) and float(budget).is_integer() and budget > 0):
            raise ValueError(f"{at}: budget must be a positive integer of env steps, got {budget!r}")
        for key in ("env", "agent", "source"):
            if not isinstance(entry[key], str) or not entry[key].strip():
                raise ValueError(f"{at}: {key} must be a non-empty string, got {entry[key]!r}")
        budget = None if budget is None else int(budget)
        references.append(Reference(entry["env"], float(value), budget, entry["agent"], entry["source"]))
    return references


def load_references(path: str | Path) -> list[Reference]:
    """References from a YAML list, or from a suite config's ``references`` key."""
    data = yaml.safe_load(Path(path).read_text())
    if isinstance(data, Mapping):
        if "references" not in data:
            raise ValueError(f"{path}: no 'references' key")
        data = data["references"]
    return parse_references(data, f"{path}: references")


def references_markdown(references: Sequence[Reference]) -> list[str]:
    """The lines of an env's "published references" table (none when there are none)."""
    if not references:
        return []
    lines = [
        "",
        "Published references (not run here; never in the aggregate, the bounds or the targets):",
        "",
        "| published by | return | budget (env steps) | source |",
        "|---|---|---|---|",
    ]
    for ref in references:
        budget = "–" if ref.budget is None else f"{ref.budget:,}"
        lines.append(f"| {ref.agent} | {ref.value:g} | {budget} | {ref.source} |")
    return lines


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
