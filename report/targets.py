"""Targets: claims about a comparison, declared as data and checked against its runs.

A suite declares what its agents should achieve (``targets:`` in ``configs/suite/<suite>.yaml``),
and ``python -m report.compare ... --targets FILE`` reports each claim as met, not met, or
pending (no runs yet). A target is a mapping::

    - name: "POPGym Easy: the best RTRL agent ends at least as high as RecurrentPPO"
      envs: ["popgym:*Easy"]            # env labels or globs; the claim must hold on each
      agents: [rtrl-elstm, rtrl-rtu]    # it holds on an env when any of these meets it
      check: final_at_least
      versus: rppo-lstm                 # an agent, {agent: its opponent}, or use `value`

Checks, for an agent A on one env, against ``versus`` B (or a number ``value``):

- ``final_at_least``: mean final return of A ≥ B's.
- ``final_above``: mean final return of A > B's.
- ``final_clearly_above``: the low end of A's 95% CI > the high end of B's (or > ``value``).
- ``sooner``: every seed of A first reaches ``threshold`` (default: the report's), and A's mean
  ``by`` (``steps`` or ``seconds``) to it is ≤ ``ratio`` (default 1) × B's mean. A seed of B
  that never reached it counts as arriving at its run's last point: B is at least that slow, so
  the bound can only favour B, and a budget too short to show the ratio reads "not met".
- ``stays``: every seed of A has a last-quarter mean (points in the last 25% of its steps)
  ≥ ``value``: a learned task stays learned.
- ``keeps``: every seed of A has a last-quarter mean within ``margin`` (default 0.1, normalised
  by the env's bounds as ``final_within``; raw where the report has none) of that seed's own best
  point: what a seed learned, it keeps. It takes neither ``versus`` nor ``value``.
- ``final_at_most``: mean final return of A ≤ B's (or ≤ ``value``): "stays at chance".
- ``greedy_at_least``: A's mean over seeds of the greedy evaluation of its final checkpoints
  (``evaluation.json``, ``python -m benchmarks.evaluate_suite``) ≥ B's (or ``value``): the measure
  of rl-zoo's published figures. Not met while a seed of A (or B) has none.
- ``final_within``: A's mean final return, normalised by the env's bounds (random 0, best 1: the
  report's), is at least B's minus ``margin`` (default 0.1). ``versus: best`` compares with the
  best agent of the env in the report, whichever it is (A itself included, so the best is
  always within).

A row is met when a listed agent meets the check; pending when none does yet and runs of a
listed agent (or its opponent) are missing; else not met, with the closest agent's numbers. A
suite part-way through is judged on finished cells only: an env named in ``envs``, or a suite's env
a glob matches, with no runs yet is a pending row, and a row whose agents still have cells to
finish is pending ("met so far ..."). A target holds when all its rows are met, or ``min_envs``
of them where it says so ("clearly above on at least two").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from report.checks import BEST, Target, TargetResult, check_on_env
from report.records import Run, Summary, group_runs

__all__ = [
    "CHECKS",
    "Target",
    "TargetResult",
    "evaluate",
    "load_targets",
    "parse_targets",
    "targets_markdown",
    "verdicts",
]

CHECKS = (
    "final_at_least",
    "final_above",
    "final_clearly_above",
    "sooner",
    "stays",
    "final_at_most",
    "final_within",
    "keeps",
    "greedy_at_least",
)


def _is_number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)


def parse_targets(raw: Any, where: str = "targets") -> list[Target]:
    """Targets from their YAML form (a list of mappings); raises ValueError naming the bad entry."""
    if not isinstance(raw, list):
        raise ValueError(f"{where}: a list of targets, got {type(raw).__name__}")
    targets: list[Target] = []
    for i, entry in enumerate(raw):
        at = f"{where}[{i}]"
        if not isinstance(entry, Mapping):
            raise ValueError(f"{at}: a target is a mapping, got {entry!r}")
        known = {
            "name", "envs", "agents", "check", "versus", "value", "threshold", "by", "ratio", "margin",
            "min_envs",
        }  # fmt: skip
        if unknown := sorted(set(entry) - known):
            raise ValueError(f"{at}: unknown keys {unknown}; known: {sorted(known)}")
        for key in ("name", "envs", "agents", "check"):
            if key not in entry:
                raise ValueError(f"{at}: missing {key!r}")
        check = entry["check"]
        if check not in CHECKS:
            raise ValueError(f"{at}: unknown check {check!r}; valid: {', '.join(CHECKS)}")
        if check != "sooner" and (extra := sorted({"threshold", "by", "ratio"} & set(entry))):
            raise ValueError(f"{at}: {extra} apply to check 'sooner' only")
        if check not in ("final_within", "keeps") and "margin" in entry:
            raise ValueError(f"{at}: ['margin'] applies to checks 'final_within' and 'keeps' only")
        envs, agents = entry["envs"], entry["agents"]
        for key, names in (("envs", envs), ("agents", agents)):
            if not (isinstance(names, list) and names and all(isinstance(n, str) for n in names)):
                raise ValueError(f"{at}: {key} must be a non-empty list of names, got {names!r}")
        versus = entry.get("versus")
        if isinstance(versus, str):
            versus = dict.fromkeys(agents, versus)
        elif isinstance(versus, Mapping):
            versus = {str(k): str(v) for k, v in versus.items()}
            if missing := [a for a in agents if a not in versus]:
                raise ValueError(f"{at}: versus names no opponent for {missing}")
        elif versus is not None:
            raise ValueError(f"{at}: versus must be an agent or a mapping agent -> opponent, got {versus!r}")
        value = entry.get("value")
        if value is not None and not _is_number(value):
            raise ValueError(f"{at}: value must be a number, got {value!r}")
        needs = {"final_at_least": "versus or value", "final_above": "versus or value",
                 "final_clearly_above": "versus or value", "sooner": "versus", "stays": "value",
                 "final_at_most": "versus or value", "final_within": "versus",
                 "keeps": "neither versus nor value", "greedy_at_least": "versus or value"}  # fmt: skip
        given = (versus is not None) + (value is not None)
        if check == "keeps":
            if given:
                raise ValueError(f"{at}: check 'keeps' takes {needs[check]}")
        elif (
            given != 1
            or (needs[check] == "versus" and versus is None)
            or (check == "stays" and value is None)
        ):
            raise ValueError(f"{at}: check {check!r} takes {needs[check]} (exactly one)")
        if versus and check != "final_within" and BEST in versus.values():
            raise ValueError(f"{at}: versus {BEST!r} applies to check 'final_within' only")
        margin = entry.get("margin", 0.1)
        if not (_is_number(margin) and margin >= 0):
            raise ValueError(f"{at}: margin must be a number >= 0, got {margin!r}")
        by = entry.get("by", "steps")
        if by not in ("steps", "seconds"):
            raise ValueError(f"{at}: by must be 'steps' or 'seconds', got {by!r}")
        ratio, threshold = entry.get("ratio", 1.0), entry.get("threshold")
        if not (_is_number(ratio) and ratio > 0):
            raise ValueError(f"{at}: ratio must be a positive number, got {ratio!r}")
        if threshold is not None and not _is_number(threshold):
            raise ValueError(f"{at}: threshold must be a number, got {threshold!r}")
        min_envs = entry.get("min_envs")
        if min_envs is not None and not (isinstance(min_envs, int) and not isinstance(min_envs, bool)
                                         and min_envs >= 1):  # fmt: skip
            raise ValueError(f"{at}: min_envs must be an integer >= 1, got {min_envs!r}")
        targets.append(
            Target(
                name=str(entry["name"]),
                envs=tuple(envs),
                agents=tuple(agents),
                check=check,
                versus=versus or {},
                value=None if value is None else float(value),
                threshold=None if threshold is None else float(threshold),
                by=by,
                ratio=float(ratio),
                margin=float(margin),
                min_envs=min_envs,
            )
        )
    return targets


def load_targets(path: str | Path) -> list[Target]:
    """Targets from a YAML file: a list, or a mapping with a ``targets`` key (a suite config).

    Read with OmegaConf, as the suite reads its config, so both see the same values."""
    raw = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    if isinstance(raw, Mapping):
        if "targets" not in raw:
            raise ValueError(f"{path}: no 'targets' key")
        raw = raw["targets"]
    return parse_targets(raw, str(path))


def evaluate(targets: Sequence[Target], summary: Summary, runs: Sequence[Run]) -> list[TargetResult]:
    """Each target on each env its globs match (one pending row when they match none)."""
    groups = group_runs(runs)
    rows = {(row.env, row.agent): row for row in summary.rows}
    envs = sorted({env for env, _ in groups})
    for target in targets:
        if target.check == "sooner" and target.threshold is None and not summary.thresholds:
            raise ValueError(
                f"target {target.name!r}: check 'sooner' needs a threshold: set `threshold:` in the "
                "target, or give the report one (--threshold)"
            )
    # A suite part-way through (summary.cells): its envs with no finished cell yet, and the cells
    # still to finish per env and agent. A row is only met or not once its agents' cells are done.
    suite_envs = {c.env for c in summary.cells}
    unfinished = {(c.env, c.agent): c for c in summary.cells if c.running or c.pending}
    results: list[TargetResult] = []
    for target in targets:
        patterns = target.envs
        matched = [env for env in envs if any(fnmatchcase(env, pattern) for pattern in patterns)]
        # An env not run yet (named, or a suite's env a glob matches) is pending, not left out.
        unrun = sorted(
            {p for p in patterns if p not in envs and not any(c in p for c in "*?[")}
            | {e for e in suite_envs - set(envs) if any(fnmatchcase(e, p) for p in patterns)}
        )
        if not matched and not unrun:
            missing = "no runs of these envs"
            results.append(TargetResult(target.name, ", ".join(patterns), "pending", None, missing))
        for env in matched:
            bounds = summary.bounds.get(env)
            result = check_on_env(target, env, groups, rows, summary.threshold_for(env), bounds)
            waiting = [
                f"{c.agent} {c.done}/{c.done + c.running + c.pending}"
                for agent in {*target.agents, *target.versus.values()}
                if (c := unfinished.get((env, agent))) is not None
            ]
            if waiting and result.status != "pending":
                so_far = f"{result.status} so far ({', '.join(sorted(waiting))} cells done)"
                detail = f"{so_far}: {result.detail}"
                result = TargetResult(result.target, env, "pending", result.agent, detail)
            results.append(result)
        results += [TargetResult(target.name, env, "pending", None, "no runs of this env") for env in unrun]
    return results


def verdicts(results: Sequence[TargetResult], targets: Sequence[Target] = ()) -> dict[str, str]:
    """Each target's verdict from its rows: "holds" when all its rows are met (or its
    ``min_envs``), "pending" while enough rows are still pending to make it hold, else "does not hold"."""
    min_envs = {t.name: t.min_envs for t in targets}
    out = {}
    for name in dict.fromkeys(r.target for r in results):
        rows = [r for r in results if r.target == name]
        met, pending = (sum(r.status == s for r in rows) for s in ("met", "pending"))
        need = min(min_envs.get(name) or len(rows), len(rows))
        out[name] = "holds" if met >= need else "pending" if met + pending >= need else "does not hold"
    return out


def targets_markdown(results: Sequence[TargetResult], targets: Sequence[Target] = ()) -> list[str]:
    """The report's "Targets" section: each target's verdict, then one row per target and env."""
    if not results:
        return []
    count = {s: sum(r.status == s for r in results) for s in ("met", "not met", "pending")}
    held = verdicts(results, targets)
    needs = {t.name: t.min_envs for t in targets if t.min_envs is not None}
    lines = [
        "## Targets",
        "",
        f"{sum(v == 'holds' for v in held.values())} of {len(held)} targets hold, "
        f"{sum(v == 'pending' for v in held.values())} pending (runs missing). A target holds when "
        "every env row of it is met, or the number of rows it names.",
        "",
        "| target | verdict |",
        "|---|---|",
        *(
            f"| {_cell(name)} | {'**holds**' if v == 'holds' else v}"
            f"{f' (needs {needs[name]} env rows met)' if name in needs else ''} |"
            for name, v in held.items()
        ),
        "",
        f"{count['met']} met, {count['not met']} not met, {count['pending']} pending (runs missing), "
        "per target and env:",
        "",
        "| target | env | status | agent | measured |",
        "|---|---|---|---|---|",
    ]
    mark = {"met": "**met**", "not met": "not met", "pending": "pending"}
    lines += [
        f"| {_cell(r.target)} | {_cell(r.env)} | {mark[r.status]} | {r.agent or '–'} | {_cell(r.detail)} |"
        for r in results
    ]
    return [*lines, ""]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")  # a bare | would end the markdown table cell
