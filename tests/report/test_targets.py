"""Targets (report/targets.py): each check met and not met on hand-made curves, pending, bad YAML."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from report.checks import last_quarter
from report.records import Run
from report.stats import summarize
from report.targets import evaluate, load_targets, parse_targets, targets_markdown, verdicts

ENV = "recall:delay16-cues4"
POINTS = 40  # logged points per run, one every 1000 env steps and every 2 seconds


@pytest.fixture(autouse=True)
def need_rliable() -> None:
    pytest.importorskip("rliable", reason='needs the compare extra: pip install -e ".[compare]"')


def run(agent: str, seed: int, values: list[float] | np.ndarray, env: str = ENV) -> Run:
    steps = 1000 * np.arange(1, len(values) + 1)
    return Run(
        path=Path(f"/runs/{env}/{agent}/seed{seed}"),
        env=env,
        agent=agent,
        seed=seed,
        steps=steps,
        values=np.asarray(values, dtype=float),
        seconds=steps / 500.0,
        fps=None,
        source="config",
    )


def ramp(reach_at: int | None, top: float = 1.0, low: float = 0.0) -> np.ndarray:
    """``low`` until point ``reach_at`` (1-based: env step 1000 * reach_at), ``top`` from there."""
    values = np.full(POINTS, low)
    if reach_at is not None:
        values[reach_at - 1 :] = top
    return values


def check(runs: list[Run], target: dict, threshold: float | None = 0.9, bounds: dict | None = None) -> list:
    summary = summarize(runs, threshold, reps=200, bounds=bounds)
    return evaluate(parse_targets([{"name": "t", "envs": [ENV], **target}]), summary, runs)


def status(runs: list[Run], target: dict, threshold: float | None = 0.9, bounds: dict | None = None) -> str:
    (result,) = check(runs, target, threshold, bounds)
    return result.status


def flat(agent: str, levels: tuple[float, ...]) -> list[Run]:
    return [run(agent, seed, np.full(POINTS, level)) for seed, level in enumerate(levels)]


def test_final_checks_compare_means_and_intervals() -> None:
    ours, peer = flat("rtrl-elstm", (0.8, 0.9, 1.0)), flat("rppo-lstm", (0.5, 0.6, 0.7))
    at_least = {"agents": ["rtrl-elstm"], "check": "final_at_least", "versus": "rppo-lstm"}
    assert status(ours + peer, at_least) == "met"
    assert status(flat("rtrl-elstm", (0.5, 0.6, 0.7)) + peer, at_least) == "met"  # equal means
    assert status(flat("rtrl-elstm", (0.5, 0.6, 0.69)) + peer, at_least) == "not met"
    above = {**at_least, "check": "final_above"}
    assert status(flat("rtrl-elstm", (0.5, 0.6, 0.7)) + peer, above) == "not met"  # strictly higher
    assert status(ours + peer, {**above, "versus": None, "value": 0.89}) == "met"
    assert status(ours + peer, {**above, "versus": None, "value": 0.9}) == "not met"
    # Clearly: the intervals must not overlap; a higher mean with overlapping seeds is not enough.
    clearly = {**at_least, "check": "final_clearly_above"}
    assert status(ours + peer, clearly) == "met"
    assert status(flat("rtrl-elstm", (0.55, 0.9, 1.0)) + peer, clearly) == "not met"
    assert status(ours, {**clearly, "versus": None, "value": 0.79}) == "met"
    assert status(ours, {**clearly, "versus": None, "value": 0.81}) == "not met"


def test_any_listed_agent_meets_it_and_the_report_names_it() -> None:
    runs = flat("rtrl-elstm", (0.1,) * 3) + flat("rtrl-rtu", (0.9,) * 3) + flat("rppo-lstm", (0.5,) * 3)
    target = {"agents": ["rtrl-elstm", "rtrl-rtu"], "check": "final_at_least", "versus": "rppo-lstm"}
    (result,) = check(runs, target)
    assert (result.status, result.agent) == ("met", "rtrl-rtu")
    assert "rtrl-rtu 0.900" in result.detail and "rppo-lstm 0.500" in result.detail
    # Not met: the closest agent is shown.
    (result,) = check(runs, {**target, "value": 0.95, "versus": None})
    assert (result.status, result.agent) == ("not met", "rtrl-rtu")


def test_sooner_needs_every_seed_and_the_ratio() -> None:
    tbptt = [run("tbptt-elstm", s, ramp(30)) for s in range(3)]  # 0.9 at 30k steps
    target = {"agents": ["rtrl-elstm"], "check": "sooner", "versus": "tbptt-elstm", "ratio": 1 / 3}
    fast = [run("rtrl-elstm", s, ramp(at)) for s, at in enumerate((9, 10, 11))]  # mean 10k <= 30k / 3
    assert status(fast + tbptt, target) == "met"
    slow = [run("rtrl-elstm", s, ramp(at)) for s, at in enumerate((10, 11, 12))]  # mean 11k > 10k
    assert status(slow + tbptt, target) == "not met"
    assert status(slow + tbptt, {**target, "ratio": 0.5}) == "met"
    one_short = [run("rtrl-elstm", s, ramp(at)) for s, at in enumerate((5, 5, None))]
    (result,) = check(one_short + tbptt, target)
    assert result.status == "not met" and "2/3 seeds" in result.detail
    # A seed that never arrives counts at its run's end (40k here): at least that slow.
    never = [run("tbptt-elstm", s, ramp(None)) for s in range(3)]
    (result,) = check(fast + never, target)
    assert result.status == "met" and "at least 40000 (0/3 seeds reached it" in result.detail
    later = [run("rtrl-elstm", s, ramp(14)) for s in range(3)]  # 14k > 40k / 3: the budget can't show it
    assert status(later + never, target) == "not met"
    some = [run("tbptt-elstm", 0, ramp(30)), run("tbptt-elstm", 1, ramp(None))]  # mean >= 35k
    assert status(slow + some, target) == "met"  # 11k <= 35k / 3
    assert status(slow + some, {**target, "ratio": 0.3}) == "not met"  # 11k > 10.5k
    # By wall-clock seconds (2 s per point here) and with the target's own threshold.
    seconds = {**target, "by": "seconds", "ratio": 1.0}
    slow_clock = [run("tbptt-elstm", s, ramp(10)) for s in range(3)]
    (result,) = check(slow + slow_clock, seconds)
    assert result.status == "not met" and "22 s" in result.detail
    lower = [run("rtrl-elstm", s, ramp(8, top=0.6) + ramp(20, top=0.4)) for s in range(3)]  # 0.6 at 8k
    assert status(lower + slow_clock, {**seconds, "threshold": 0.5}) == "met"
    assert status(lower + slow_clock, {**seconds, "threshold": 0.9}) == "not met"


def test_sooner_without_any_threshold_is_an_error_before_any_env_is_read() -> None:
    runs = [run("a", 0, ramp(5)), run("b", 0, ramp(6))]
    target = {"agents": ["a"], "check": "sooner", "versus": "b"}
    with pytest.raises(
        ValueError, match=r"needs a threshold: set `threshold:` in the target, or .*--threshold"
    ):
        check(runs, {**target, "envs": ["atari:*"]}, threshold=None)  # matches no env yet
    assert status(runs, {**target, "threshold": 0.5}, threshold=None) == "met"


def test_sooner_at_the_first_point_and_the_closest_agent() -> None:
    first = [run("b", s, np.ones(POINTS)) for s in range(3)]  # 0 s to the threshold: no division by 0
    assert status([run("a", s, np.ones(POINTS)) for s in range(3)] + first,
                  {"agents": ["a"], "check": "sooner", "versus": "b", "by": "seconds"}) == "met"  # fmt: skip
    # Not met: an agent that reached on every seed, however slowly, is closer than one that did not.
    tbptt = [run("b", s, ramp(3)) for s in range(3)]
    slow_all = [run("slow", s, ramp(30)) for s in range(3)]
    fast_some = [run("fast", s, ramp(at)) for s, at in enumerate((2, 2, None))]
    (result,) = check(slow_all + fast_some + tbptt,
                      {"agents": ["fast", "slow"], "check": "sooner", "versus": "b"})  # fmt: skip
    assert (result.status, result.agent) == ("not met", "slow")


def test_stays_reads_every_seeds_last_quarter() -> None:
    held = [run("rtrl-elstm", s, ramp(10, top=0.95)) for s in range(3)]
    target = {"agents": ["rtrl-elstm"], "check": "stays", "value": 0.9}
    assert status(held, target) == "met"
    # One seed learns, then falls back in its last quarter: the peak does not count.
    fell = ramp(10, top=0.95)
    fell[-8:] = 0.3  # last quarter = points 31..40 (steps >= 30,250): 2 at 0.95, 8 at 0.3
    (result,) = check([*held[:2], run("rtrl-elstm", 2, fell)], target)
    assert result.status == "not met" and "0.430" in result.detail
    assert last_quarter(run("x", 0, fell)) == pytest.approx((2 * 0.95 + 8 * 0.3) / 10)


def test_keeps_compares_each_seeds_last_quarter_with_its_own_best() -> None:
    keeps = {"agents": ["kfrtrl-rhn"], "check": "keeps"}
    held = [run("kfrtrl-rhn", s, ramp(10, top=0.9 - 0.1 * s, low=0.25)) for s in range(3)]
    assert status(held, keeps, bounds={ENV: [0.25, 1.0]}) == "met"  # seed 2 peaks lower, and keeps it
    # One seed learns to 0.95, then falls to 0.5 for its last quarter: 0.45 raw below its best,
    # 0.6 normalised by [0.25, 1.0]; the seeds that hold do not rescue it.
    fell = ramp(10, top=0.95, low=0.25)
    fell[-10:] = 0.5
    (result,) = check([*held[:2], run("kfrtrl-rhn", 2, fell)], keeps, bounds={ENV: [0.25, 1.0]})
    assert result.status == "not met" and "0.600 (normalised)" in result.detail
    assert (
        status([*held[:2], run("kfrtrl-rhn", 2, fell)], {**keeps, "margin": 0.61}, bounds={ENV: [0.25, 1.0]})
        == "met"
    )
    # A brief spike counts as the best: the check reads the logged (already smoothed) curve.
    spike = ramp(10, top=0.8, low=0.25)
    spike[20] = 0.95
    assert status([*held[:2], run("kfrtrl-rhn", 2, spike)], keeps, bounds={ENV: [0.25, 1.0]}) == "not met"


def test_final_at_most_reads_chance_as_a_ceiling() -> None:
    chance = flat("stream-tbptt", (0.0, 0.1, -0.1))
    assert status(chance, {"agents": ["stream-tbptt"], "check": "final_at_most", "value": 0.2}) == "met"
    assert status(chance, {"agents": ["stream-tbptt"], "check": "final_at_most", "value": -0.01}) == "not met"
    rtrl = flat("stream-rtu", (0.9,) * 3)
    assert (
        status(chance + rtrl, {"agents": ["stream-tbptt"], "check": "final_at_most", "versus": "stream-rtu"})
        == "met"
    )
    assert (
        status(chance + rtrl, {"agents": ["stream-rtu"], "check": "final_at_most", "versus": "stream-tbptt"})
        == "not met"
    )


def test_final_within_normalises_by_the_bounds_and_can_name_the_best() -> None:
    # Bounds from the runs here (observed): low 0.2 (c), high 1.0 (best); a's 0.93 is 0.9125
    # normalised, 0.0875 behind the best; b's 0.9 is 0.125 behind.
    runs = flat("best", (1.0,) * 3) + flat("a", (0.93,) * 3) + flat("b", (0.9,) * 3) + flat("c", (0.2,) * 3)
    within = {"agents": ["a"], "check": "final_within", "versus": "best"}
    (result,) = check(runs, within)
    assert result.status == "met" and "gap 0.088" in result.detail and "vs best 1.000" in result.detail
    assert status(runs, {**within, "agents": ["b"]}) == "not met"
    assert status(runs, {**within, "agents": ["b"], "margin": 0.13}) == "met"
    assert status(runs, {**within, "agents": ["best"]}) == "met"  # the best is within of itself
    # `best` is whichever agent is best on the env, not an agent named so.
    runs = flat("x", (1.0,) * 3) + flat("a", (0.5,) * 3) + flat("c", (0.0,) * 3)
    (result,) = check(runs, {**within, "margin": 0.4})
    assert result.status == "not met" and "vs x 1.000" in result.detail
    assert status(runs, {**within, "versus": "c"}) == "met"


def test_nan_and_single_seeds_never_pass() -> None:
    nan = ramp(10, top=0.95)
    nan[-1] = np.nan
    for order in ([0, 1, 2], [2, 0, 1]):
        runs = [run("a", s, ramp(10, top=0.95) if s != 2 else nan) for s in order]
        assert status(runs, {"agents": ["a"], "check": "stays", "value": 0.9}) == "not met"
    # One seed's CI is a point: it cannot show "clearly above".
    (result,) = check(flat("a", (0.9,)), {"agents": ["a"], "check": "final_clearly_above", "value": 0.5})
    assert result.status == "not met" and "(1 seed)" in result.detail and "needs 2+ seeds" in result.detail


def test_pending_when_the_runs_are_not_there_yet() -> None:
    runs = flat("rtrl-elstm", (0.9,) * 3)
    target = {"agents": ["rtrl-elstm"], "check": "final_above", "versus": "tbptt-elstm"}
    (result,) = check(runs, target)
    assert result.status == "pending" and "tbptt-elstm" in result.detail
    summary = summarize(runs, 0.9, reps=200)
    (result,) = evaluate(parse_targets([{"name": "t", "envs": ["popgym:*"], **target}]), summary, runs)
    assert result.status == "pending" and result.env == "popgym:*"
    # An agent still to run may meet it: pending, with the closest agent's numbers so far.
    runs = flat("rtrl-elstm", (0.2,) * 3)
    (result,) = check(runs, {"agents": ["rtrl-elstm", "rtrl-rtu"], "check": "final_above", "value": 0.5})
    assert (result.status, result.agent) == (
        "pending",
        "rtrl-elstm",
    ) and "no runs of rtrl-rtu" in result.detail
    (result,) = check(runs, {"agents": ["rtrl-elstm", "rtrl-rtu"], "check": "final_above", "value": 0.1})
    assert result.status == "met"


def test_globs_give_one_row_per_env_and_the_markdown_counts_them() -> None:
    runs = flat("rtrl-elstm", (0.9,) * 3) + [
        run("rtrl-elstm", s, np.full(POINTS, 0.2), env=f"{ENV} (no prev action)") for s in range(3)
    ]
    summary = summarize(runs, 0.9, reps=200)
    targets = parse_targets([{"name": "d16", "envs": ["recall:delay16-*"], "agents": ["rtrl-elstm"],
                              "check": "final_at_least", "value": 0.5}])  # fmt: skip
    results = evaluate(targets, summary, runs)
    assert [(r.env, r.status) for r in results] == [(ENV, "met"), (f"{ENV} (no prev action)", "not met")]
    text = "\n".join(targets_markdown(results))
    assert "1 met, 1 not met, 0 pending" in text and "| d16 | recall:delay16-cues4 | **met** |" in text
    piped = parse_targets(
        [{"name": "a | b", "envs": [ENV], "agents": ["rtrl-elstm"], "check": "stays", "value": 0}]
    )
    assert "| a \\| b |" in targets_markdown(evaluate(piped, summary, runs))[-2]
    assert targets_markdown([]) == []


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ({"check": "best"}, "unknown check 'best'; valid: final_at_least"),
        ({"check": "sooner", "value": 1.0}, "takes versus"),
        ({"check": "stays", "versus": "b"}, "takes value"),
        ({"check": "final_above"}, "takes versus or value"),
        ({"check": "final_above", "versus": "b", "value": 1.0}, "exactly one"),
        ({"check": "final_above", "versus": {"x": "b"}}, r"no opponent for \['a'\]"),
        ({"check": "final_above", "value": 1.0, "speed": 2}, r"unknown keys \['speed'\]"),
        ({"check": "sooner", "versus": "b", "by": "hours"}, "by must be"),
        ({"check": "sooner", "versus": "b", "ratio": 0}, "ratio must be a positive"),
        ({"check": "final_above", "value": 1.0, "agents": []}, "agents must be a non-empty list"),
        ({"check": "stays", "value": True}, "value must be a number"),
        ({"check": "stays", "value": 0.9, "ratio": 0.5}, r"\['ratio'\] apply to check 'sooner' only"),
        ({"check": "final_within", "value": 0.5}, "takes versus"),
        ({"check": "final_above", "versus": "best"}, "versus 'best' applies to check 'final_within' only"),
        (
            {"check": "final_above", "value": 1.0, "margin": 0.1},
            r"\['margin'\] applies to checks 'final_within' and 'keeps' only",
        ),
        ({"check": "final_within", "versus": "b", "margin": -1}, "margin must be a number >= 0"),
        ({"check": "keeps", "value": 0.9}, "check 'keeps' takes neither versus nor value"),
        ({"check": "keeps", "margin": "x"}, "margin must be a number >= 0"),
        ({"check": "stays", "value": 0.9, "min_envs": 0}, "min_envs must be an integer >= 1"),
        ({"check": "stays", "value": 0.9, "min_envs": True}, "min_envs must be an integer >= 1"),
    ],
)
def test_bad_targets_name_the_entry_and_the_problem(entry: dict, match: str) -> None:
    with pytest.raises(ValueError, match=r"^suite.yaml: targets\[0\]: .*" + match):
        parse_targets([{"name": "t", "envs": [ENV], "agents": ["a"], **entry}], "suite.yaml: targets")


def test_load_targets_reads_a_list_or_a_suite_config(tmp_path: Path) -> None:
    entry = "- {name: t, envs: [e], agents: [a], check: stays, value: 0.9}\n"
    (tmp_path / "list.yaml").write_text(entry)
    (tmp_path / "suite.yaml").write_text("seeds: [0]\ntargets:\n  " + entry)
    (tmp_path / "none.yaml").write_text("seeds: [0]\n")
    assert load_targets(tmp_path / "list.yaml") == load_targets(tmp_path / "suite.yaml")
    with pytest.raises(ValueError, match="no 'targets' key"):
        load_targets(tmp_path / "none.yaml")


def test_greedy_at_least_reads_the_greedy_evaluations_of_every_seed() -> None:
    from dataclasses import replace

    ours = [
        replace(r, greedy=g)
        for r, g in zip(flat("rtrl-elstm", (0.1, 0.2, 0.3)), (0.9, 1.0, 0.8), strict=True)
    ]
    peer = [replace(r, greedy=0.85) for r in flat("rppo-lstm", (0.9, 0.9, 0.9))]
    target = {"agents": ["rtrl-elstm"], "check": "greedy_at_least", "versus": "rppo-lstm"}
    assert status(ours + peer, target) == "met"  # 0.9 >= 0.85, though its training returns are lower
    assert status(ours + peer, {**target, "versus": None, "value": 0.9}) == "met"
    (result,) = check(ours + peer, {**target, "versus": None, "value": 0.91})
    assert result.status == "not met" and "greedy 0.900 (3 seeds) vs 0.91" in result.detail
    ours[1] = replace(ours[1], greedy=None)  # one seed not evaluated: never met
    (result,) = check(ours + peer, {**target, "versus": None, "value": 0.0})
    assert result.status == "not met" and "rtrl-elstm 1/3" in result.detail
    unevaluated_peer = flat("rppo-lstm", (0.9, 0.9, 0.9))
    (result,) = check(ours[:1] + unevaluated_peer, target)
    assert result.status == "not met" and "rppo-lstm 3/3" in result.detail


def test_a_named_env_not_run_yet_is_pending_and_min_envs_sets_how_many_rows_must_hold() -> None:
    """A suite part-way through: a named env without runs is a pending row, never left out (the
    target would else hold on the envs run so far); ``min_envs`` lets 2 of 3 rows suffice."""
    other = "recall:delay4-cues4"
    runs = flat("a", (0.9,) * 3) + [run("a", s, np.full(POINTS, 0.2), env=other) for s in range(3)]
    summary = summarize(runs, 0.9, reps=200)
    envs = [ENV, other, "recall:delay8-cues4"]
    entry = {"envs": envs, "agents": ["a"], "check": "final_at_least", "value": 0.5}
    every, two = parse_targets([{"name": "every", **entry}, {"name": "two", **entry, "min_envs": 2}])
    results = evaluate([every, two], summary, runs)
    assert [(r.env, r.status) for r in results if r.target == "every"] == [
        (ENV, "met"), (other, "not met"), ("recall:delay8-cues4", "pending")
    ]  # fmt: skip
    assert results[2].detail == "no runs of this env"
    assert verdicts(results, [every, two]) == {"every": "does not hold", "two": "pending"}
    assert verdicts(results) == {"every": "does not hold", "two": "does not hold"}  # min_envs unknown
    # Once the third env is run and met, 2 of 3 rows suffice; "every" still needs the third.
    third = [run("a", s, np.full(POINTS, 0.9), env="recall:delay8-cues4") for s in range(3)]
    results = evaluate([every, two], summarize(runs + third, 0.9, reps=200), runs + third)
    assert verdicts(results, [every, two]) == {"every": "does not hold", "two": "holds"}
    text = "\n".join(targets_markdown(results, [every, two]))
    assert "1 of 2 targets hold, 0 pending" in text
    assert "| two | **holds** (needs 2 env rows met) |" in text and "| every | does not hold |" in text
    # With every row met, both hold; a glob that matches nothing stays one pending row.
    flat_all = flat("a", (0.9,) * 3)
    glob = parse_targets([{"name": "g", "envs": ["popgym:*"], "agents": ["a"], "check": "stays", "value": 0}])
    results = evaluate(glob, summarize(flat_all, 0.9, reps=200), flat_all)
    assert [(r.env, r.status) for r in results] == [("popgym:*", "pending")]
    assert verdicts(results, glob) == {"g": "pending"}


def test_a_part_way_suite_is_judged_on_finished_cells_only() -> None:
    """With a suite's cells, a glob's env with no finished cell yet is a pending row, and a row
    whose agent has seeds still to run is pending "so far", whatever its numbers say now."""
    from report.records import CellCount

    runs = flat("a", (0.9,))  # 1 of a's 3 seeds done on ENV
    other = "recall:delay4-cues4"
    cells = [CellCount(ENV, "a", 1, 1, 1), CellCount(other, "a", 0, 0, 3)]
    summary = summarize(runs, 0.9, reps=200, cells=cells)
    entry = {"name": "g", "envs": ["recall:*"], "agents": ["a"], "check": "stays", "value": 0.5}
    glob = parse_targets([entry])
    results = evaluate(glob, summary, runs)
    assert [(r.env, r.status) for r in results] == [(ENV, "pending"), (other, "pending")]
    assert results[0].detail.startswith("met so far (a 1/3 cells done): a last-quarter means 0.900")
    assert results[1].detail == "no runs of this env"
    assert verdicts(results, glob) == {"g": "pending"}
    # Every cell done: judged.
    done = summarize(flat("a", (0.9,) * 3), 0.9, reps=200, cells=[CellCount(ENV, "a", 3, 0, 0)])
    assert [r.status for r in evaluate(glob, done, flat("a", (0.9,) * 3))] == ["met"]
