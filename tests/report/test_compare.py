"""report.compare on synthetic runs with known curves: the table's numbers, the PNGs, the errors."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from unittest import mock

import numpy as np
import pytest
import yaml
from torch.utils.tensorboard import SummaryWriter

from report.compare import main
from report.runs import agent_label, env_label, load_run, load_runs
from report.stats import mean_curve, summarize
from report.thresholds import load_bounds, parse_threshold_args
from report.write import _markdown, machine_info

START = 1_000_000.0  # wall time of each run's first event
POINTS = 20  # logged points per run; the final return is the mean of the last 2
THRESHOLD = 0.5
ENVS = {
    "popgym:RepeatPreviousEasy": {"name": "popgym", "id": "RepeatPrevious", "difficulty": "Easy"},
    "recall:delay12-cues4": {"name": "recall", "delay": 12, "num_cues": 4},
}
# Agent -> (algo, core, wall seconds per point, time/fps logged); 1000 env steps per point.
AGENTS = {"rtrl-elstm": ("rtrl", "elstm", 2.0, True), "tbptt-lstm": ("tbptt", "lstm", 4.0, False)}
# (env, agent) -> plateau f of each seed 0, 1, 2. Curve: min(0.125 i, f) for i < 19, then f + 0.25,
# so the final return (mean of the last 10% = 2 points) is f + 0.125.
LEVELS = {
    ("popgym:RepeatPreviousEasy", "rtrl-elstm"): (0.5, 0.75, 1.0),
    ("popgym:RepeatPreviousEasy", "tbptt-lstm"): (0.25, 0.5, 0.5),
    ("recall:delay12-cues4", "rtrl-elstm"): (0.75, 0.75, 0.5),
    ("recall:delay12-cues4", "tbptt-lstm"): (0.125, 0.125, 0.25),
}


def need_rliable() -> None:
    pytest.importorskip("rliable", reason='needs the compare extra: pip install -e ".[compare]"')


def curve(level: float) -> list[float]:
    return [min(0.125 * i, level) for i in range(POINTS - 1)] + [level + 0.25]


def write_run(
    run_dir: Path,
    values: list[float],
    seconds_per_point: float,
    fps: bool = True,
    config: dict | None = None,
    hparams: dict | None = None,
) -> None:
    """An event file as train.py writes it: first event at START, point i at step 1000 (i + 1)."""
    run_dir.mkdir(parents=True)
    if config is not None:
        (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    with mock.patch("time.time", return_value=START):  # the file_version event's wall time
        writer = SummaryWriter(str(run_dir))
    for i, value in enumerate(values):
        wall = START + seconds_per_point * (i + 1)
        writer.add_scalar("rollout/ep_rew_mean", value, 1000 * (i + 1), walltime=wall)
        if fps:
            writer.add_scalar("time/fps", 500.0 + i, 1000 * (i + 1), walltime=wall)  # last: 519
    if hparams is not None:
        writer.add_hparams(hparams, {"hparam/ep_rew_mean": values[-1]}, run_name=".")
    writer.close()


@pytest.fixture(scope="module")
def runs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """2 envs × 2 agents × 3 seeds in train.py's layout, with config.yaml."""
    root = tmp_path_factory.mktemp("runs")
    for (env, agent), levels in LEVELS.items():
        algo, core, seconds, fps = AGENTS[agent]
        env_cfg = ENVS[env]
        for seed, level in enumerate(levels):
            config = {
                "seed": seed,
                "env": env_cfg,
                "algo": {"name": algo, "rollout_len": 8},
                "core": {"name": core},
                "policy": {"prev_action": True},
            }
            run_dir = root / env_cfg["name"] / f"{algo}-{core}" / f"seed{seed}-20261201-000000"
            write_run(run_dir, curve(level), seconds, fps, config)
    return root


@pytest.fixture(scope="module")
def report(runs_root: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    need_rliable()
    out = tmp_path_factory.mktemp("report")
    assert main([str(runs_root), "--out", str(out), "--threshold", str(THRESHOLD), "--reps", "300"]) == 0
    return out


def test_load_runs_labels_seeds_and_points(runs_root: Path) -> None:
    runs = load_runs([runs_root])
    assert len(runs) == 12
    assert {(r.env, r.agent) for r in runs} == set(LEVELS)
    run = next(r for r in runs if r.agent == "tbptt-lstm" and r.env.startswith("recall") and r.seed == 2)
    assert run.source == "config"
    np.testing.assert_array_equal(run.steps, 1000 * np.arange(1, POINTS + 1))
    np.testing.assert_array_equal(run.values, curve(0.25))
    np.testing.assert_array_equal(run.seconds, 4.0 * np.arange(1, POINTS + 1))
    assert run.final == 0.375
    assert run.fps is None and run.steps_per_second == 250.0  # 20000 steps in 80 s


@pytest.mark.compare
def test_summary_table_numbers(report: Path) -> None:
    rows = {(r["env"], r["agent"]): r for r in json.loads((report / "summary.json").read_text())["rows"]}
    expected = {  # final_mean, worst, reached, steps_to_threshold, seconds_to_threshold, steps/s
        ("popgym:RepeatPreviousEasy", "rtrl-elstm"): (0.875, 0.625, 3, 5000, 10.0, 519.0),
        # seed 0 reaches 0.5 only at its last point (step 20000, 80 s); seeds 1, 2 at step 5000 (20 s)
        ("popgym:RepeatPreviousEasy", "tbptt-lstm"): (1.625 / 3, 0.375, 3, 10000, 40.0, 250.0),
        ("recall:delay12-cues4", "rtrl-elstm"): (2.375 / 3, 0.625, 3, 5000, 10.0, 519.0),
        # seeds 0 and 1 never reach 0.5 (their best point is 0.375)
        ("recall:delay12-cues4", "tbptt-lstm"): (0.875 / 3, 0.25, 1, 20000, 80.0, 250.0),
    }
    assert set(rows) == set(expected)
    for key, (mean, worst, reached, steps, seconds, sps) in expected.items():
        row = rows[key]
        assert row["num_seeds"] == 3 and row["seeds"] == [0, 1, 2]
        assert row["finals"] == [level + 0.125 for level in LEVELS[key]]
        assert row["final_mean"] == pytest.approx(mean, abs=1e-12)
        assert row["worst"] == worst
        assert min(row["finals"]) <= row["final_ci"][0] <= mean <= row["final_ci"][1] <= max(row["finals"])
        assert (row["reached"], row["steps_to_threshold"], row["seconds_to_threshold"]) == (
            reached,
            steps,
            seconds,
        )
        assert row["steps_per_second"] == sps
        assert row["last_step"] == 20000


@pytest.mark.compare
def test_summary_markdown_and_csv(report: Path) -> None:
    md = (report / "summary.md").read_text()
    assert "commit `" in md and "CPUs" in md and "python -m report.compare" in md
    assert "| rtrl-elstm | 3 | 0.875 [" in md
    assert "| tbptt-lstm | 3 | 0.292 [" in md and "| 1/3 | 20000 | 80.0 | 250 |" in md
    assert "| popgym:RepeatPreviousEasy | 0.875 (0.625) | 0.542 (0.375) |" in md
    lines = (report / "summary.csv").read_text().splitlines()
    assert len(lines) == 5 and lines[0].startswith("env,agent,num_seeds,final_mean")


@pytest.mark.compare
def test_targets_are_checked_into_the_report(runs_root: Path, tmp_path: Path) -> None:
    need_rliable()
    (tmp_path / "targets.yaml").write_text(
        "- {name: beats, envs: ['popgym:*'], agents: [rtrl-elstm], check: final_above, versus: tbptt-lstm}\n"
        "- {name: high, envs: ['recall:*'], agents: [rtrl-elstm], check: final_at_least, value: 2.0}\n"
        "- {name: later, envs: ['atari:*'], agents: [rtrl-elstm], check: stays, value: 0.5}\n"
    )
    out = tmp_path / "out"
    argv = [str(runs_root), "--out", str(out), "--reps", "100", "--targets", str(tmp_path / "targets.yaml")]
    assert main(argv) == 0
    md = (out / "summary.md").read_text()
    assert "## Targets" in md and "1 met, 1 not met, 1 pending" in md
    assert "| beats | popgym:RepeatPreviousEasy | **met** | rtrl-elstm | rtrl-elstm 0.875" in md
    targets = json.loads((out / "summary.json").read_text())["targets"]
    assert [t["status"] for t in targets] == ["met", "not met", "pending"]


@pytest.mark.compare
def test_aggregate_iqm_of_normalised_finals(report: Path) -> None:
    data = json.loads((report / "summary.json").read_text())
    assert data["bounds"]["popgym:RepeatPreviousEasy"] == {"low": 0.375, "high": 1.125, "source": "observed"}
    agg = {a["agent"]: a for a in data["aggregate"]}
    # rtrl-elstm normalised: popgym 1/3, 2/3, 1; recall 1, 1, 0.6 -> IQM trims one at each end
    assert agg["rtrl-elstm"]["iqm"] == pytest.approx((0.6 + 2 / 3 + 1 + 1) / 4)
    assert agg["rtrl-elstm"]["mean"] == pytest.approx((1 / 3 + 2 / 3 + 1 + 1 + 1 + 0.6) / 6)
    for a in agg.values():
        assert a["num_envs"] == 2 and a["seeds_per_env"] == 3
        assert a["iqm_ci"][0] <= a["iqm"] <= a["iqm_ci"][1]


@pytest.mark.compare
def test_pngs_exist_and_are_valid(report: Path) -> None:
    import matplotlib.image

    names = ["curves_popgym_RepeatPreviousEasy.png", "curves_recall_delay12-cues4.png", "aggregate.png"]
    for name in names:
        path = report / name
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        image = matplotlib.image.imread(path)
        assert image.ndim == 3 and image.shape[0] > 100 and image.std() > 0  # not a blank image
        assert f"({name})" in (report / "summary.md").read_text()


@pytest.mark.compare
def test_mean_curve_interpolates_onto_a_common_grid(tmp_path: Path) -> None:
    need_rliable()
    runs = []
    for i, level in enumerate((0.25, 0.75)):
        write_run(tmp_path / f"r{i}", curve(level), 1.0, config=None)
        runs.append(load_run(tmp_path / f"r{i}"))
    c = mean_curve(runs, num_points=39, reps=100)  # grid every 500 steps
    assert c.steps[0] == 1000 and c.steps[-1] == 20000
    np.testing.assert_allclose(c.mean[:3], [0.0, 0.0625, 0.125])  # interpolated halfway at 1500
    assert np.all(c.low <= c.mean + 1e-12) and np.all(c.mean <= c.high + 1e-12)


def test_directory_name_fallback_and_written_labels(tmp_path: Path) -> None:
    write_run(tmp_path / "myenv" / "myalgo-mycore" / "seed7-20261201", curve(0.5), 1.0)
    config = {"seed": 3, "env": {"name": "newfamily", "x": 1}, "algo": {"name": "rppo"}, "policy": {}}
    write_run(tmp_path / "b" / "run", curve(0.5), 1.0, config=config, hparams={"env": "newfamily:X1"})
    config = {
        "seed": 1,
        "env": {"name": "recall", "delay": 16, "num_cues": 4},
        "algo": {"name": "tbptt"},
        "core": {"name": "gru"},
        "policy": {"prev_action": False},
    }
    write_run(tmp_path / "c" / "run", curve(0.5), 1.0, config=config, hparams={"env": "recall:delay16-cues4"})
    runs = {r.path.parent.name: r for r in load_runs([tmp_path])}
    fallback = runs["myalgo-mycore"]
    assert (fallback.env, fallback.agent, fallback.seed, fallback.source) == (
        "myenv",
        "myalgo-mycore",
        7,
        "dirs",
    )
    assert (runs["b"].env, runs["b"].agent, runs["b"].seed) == ("newfamily:X1", "rppo", 3)
    assert (runs["c"].env, runs["c"].agent) == ("recall:delay16-cues4 (no prev action)", "tbptt-gru")


@pytest.mark.parametrize(
    "env",
    [
        {"name": "recall", "delay": 12, "num_cues": 4, "distractors": False},
        {"name": "recall", "delay": 16, "num_cues": 3, "distractors": True},
        {"name": "gym", "id": "CartPole-v1"},
    ],
    ids=["recall", "recall-distractors", "gym"],
)
def test_env_labels_match_the_adapters_names(env: dict) -> None:
    """A crashed run (label from config.yaml) groups with finished ones (the adapter's name)."""
    from envs.make import ENV_MAKERS

    made = ENV_MAKERS[env["name"]](env, 1)
    made.env.close()
    assert env_label(env) == made.name


def test_labels() -> None:
    assert env_label({"name": "procgen", "game": "maze", "distribution_mode": "memory"}) == (
        "procgen:maze-memory"
    )
    assert env_label({"name": "atari", "game": "pong"}) == "atari:pong"
    assert env_label({"name": "gym", "id": "CartPole-v1"}) == "gym:CartPole-v1"
    assert env_label({"name": "unknown"}) is None
    cfg = {"algo": {"name": "tbptt", "rollout_len": 32}, "core": {"name": "lstm"}}
    assert agent_label(cfg, ["algo.rollout_len"]) == "tbptt-lstm[rollout_len=32]"


@pytest.mark.compare
def test_thresholds_per_env(runs_root: Path) -> None:
    need_rliable()
    runs = load_runs([runs_root])
    # recall's threshold 0.7 (by its glob), popgym's the bare 0.5 that covers the rest
    summary = summarize(runs, parse_threshold_args(["0.5", "recall:*=0.7"]), reps=100)
    rows = {(r.env, r.agent): r for r in summary.rows}
    assert rows[("popgym:RepeatPreviousEasy", "rtrl-elstm")].threshold == 0.5
    # plateaus 0.75, 0.75, 0.5: 0.7 first at step 7000 (0.75), 7000, and 20000 (the last, 0.75)
    elstm = rows[("recall:delay12-cues4", "rtrl-elstm")]
    assert (elstm.threshold, elstm.reached, elstm.steps_to_threshold) == (0.7, 3, pytest.approx(34000 / 3))
    # An env no glob covers gets no threshold columns.
    summary = summarize(runs, {"recall:*": 0.7}, reps=100)
    popgym = next(r for r in summary.rows if r.env.startswith("popgym"))
    assert (popgym.threshold, popgym.reached, popgym.steps_to_threshold) == (None, 0, None)
    md = _markdown(summary, machine_info(), None)
    popgym_section = md.split("## popgym:RepeatPreviousEasy")[1].split("## ")[0]
    recall_section = md.split("## recall:delay12-cues4")[1].split("## ")[0]
    assert "reached ≥" not in popgym_section and "| reached ≥ 0.7 |" in recall_section
    assert "Thresholds per env (`recall:*`: 0.7; none for the others)" in md
    with pytest.raises(ValueError, match="two bare numbers"):
        parse_threshold_args(["0.5", "0.6"])
    with pytest.raises(ValueError, match="expected a number or GLOB=number"):
        parse_threshold_args(["recall:*=high"])


@pytest.mark.compare
def test_given_bounds(runs_root: Path, tmp_path: Path) -> None:
    need_rliable()
    bounds_file = tmp_path / "bounds.yaml"
    bounds_file.write_text("popgym:RepeatPreviousEasy: [-0.5, 1.0]\n")
    runs = load_runs([runs_root])
    summary = summarize(runs, bounds=load_bounds(bounds_file), reps=50)
    assert summary.bounds["popgym:RepeatPreviousEasy"] == (-0.5, 1.0)
    assert summary.bounds_source == {"popgym:RepeatPreviousEasy": "given", "recall:delay12-cues4": "observed"}
    bounds_file.write_text("popgym:RepeatPreviousEasy: [1.0]\n")
    with pytest.raises(ValueError, match=r"\[low, high\]"):
        load_bounds(bounds_file)
    # A suite config holds them under `bounds` (the suite passes its own file).
    bounds_file.write_text("tasks: {}\nbounds: {'popgym:RepeatPreviousEasy': [-0.5, 1.0]}\n")
    assert load_bounds(bounds_file) == {"popgym:RepeatPreviousEasy": (-0.5, 1.0)}
    bounds_file.write_text("tasks: {}\n")
    with pytest.raises(ValueError, match="no 'bounds' key"):
        load_bounds(bounds_file)


def test_no_runs_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no runs found under"):
        load_runs([tmp_path / "empty"])
    with pytest.raises(FileNotFoundError, match="no such directory"):
        load_runs([tmp_path / "missing"])
    assert main([str(tmp_path / "empty"), "--out", str(tmp_path / "out")]) == 2
    assert "no runs found" in capsys.readouterr().err
    write_run(tmp_path / "other_tag", [1.0], 1.0)
    with pytest.raises(ValueError, match="logged 'train/x'"):
        load_runs([tmp_path / "other_tag"], tag="train/x")


def test_missing_extra_says_how_to_install(runs_root: Path) -> None:
    runs = load_runs([runs_root])
    with mock.patch.dict(sys.modules, {"rliable": None}), pytest.raises(ImportError, match=r"\[compare\]"):
        summarize(runs)


def test_references_print_beside_the_rows_and_stay_out_of_everything(runs_root: Path, tmp_path: Path) -> None:
    """A published reference far above every run changes no statistic: not the aggregate, the
    observed bounds or the rows; it shows under its env, marked as published."""
    need_rliable()
    from report.references import load_references, parse_references

    refs = tmp_path / "refs.yaml"
    refs.write_text(
        yaml.safe_dump(
            {"references": [{"env": "recall:delay12-cues4", "value": 99.0, "budget": 100_000,
                             "agent": "Paper agent", "source": "Some paper, Table 2"}]}
        )
    )  # fmt: skip
    assert load_references(refs)[0].value == 99.0 and load_references(refs)[0].budget == 100_000
    plain, with_refs = tmp_path / "plain", tmp_path / "refs"
    assert main([str(runs_root), "--out", str(plain), "--reps", "300"]) == 0
    assert main([str(runs_root), "--out", str(with_refs), "--reps", "300", "--references", str(refs)]) == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (plain, with_refs))
    for key in ("rows", "aggregate", "aggregate_envs", "bounds"):
        assert a[key] == b[key], key
    assert b["references"][0]["agent"] == "Paper agent"
    markdown = (with_refs / "summary.md").read_text()
    section = markdown.split("## recall:delay12-cues4")[1]
    assert (
        "Published references" in section
        and "| Paper agent | 99 | 100,000 | Some paper, Table 2 |" in section
    )
    for bad, match in [
        ([{"env": "e", "value": 1.0, "agent": "a"}], "missing"),
        ([{"env": "e", "value": "x", "agent": "a", "source": "s"}], "value must be a number"),
        ([{"env": "e", "value": 1.0, "agent": "a", "source": "s", "budget": -5}], "budget"),
        ({"env": "e"}, "must be a list"),
    ]:
        with pytest.raises(ValueError, match=match):
            parse_references(bad)


def test_aggregate_leaves_out_an_agent_run_on_few_envs() -> None:
    from report.stats import aggregate_set

    finished = {(env, agent): 3 for env in ("a", "b", "c") for agent in ("x", "y")}
    assert aggregate_set(finished) == (["a", "b", "c"], ["x", "y"])  # all ran all: everything
    finished[("a", "preset")] = 3  # a preset that exists for one env
    assert aggregate_set(finished) == (["a", "b", "c"], ["x", "y"])
    assert aggregate_set(finished, ["a"]) == (["a"], ["preset", "x", "y"])
    assert aggregate_set({}) == ([], [])


def test_greedy_evaluations_show_beside_the_rows_and_stay_out_of_the_statistics(
    runs_root: Path, tmp_path: Path
) -> None:
    """A run dir's evaluation.json (benchmarks/evaluate_suite.py) adds a greedy column and overview:
    mean over the evaluated seeds (worst), the count where some are missing, the references beside."""
    need_rliable()
    import shutil

    from report.runs import greedy_return

    root = tmp_path / "runs"
    shutil.copytree(runs_root, root)
    seeds = sorted((root / "recall" / "rtrl-elstm").iterdir())
    evaluations = [
        {"greedy-5ep-seed1": {"greedy": True, "episodes": 5, "return_mean": 0.2},  # fewer episodes
         "greedy-20ep-seed1": {"greedy": True, "episodes": 20, "return_mean": 0.9},
         "sampled-50ep-seed1": {"greedy": False, "episodes": 50, "return_mean": 0.1}},  # not greedy
        {"greedy-20ep-seed1": {"greedy": True, "episodes": 20, "return_mean": 0.6}},
    ]  # fmt: skip
    for run_dir, evaluation in zip(seeds, evaluations, strict=False):  # seed 2: not evaluated
        (run_dir / "evaluation.json").write_text(json.dumps(evaluation))
    assert greedy_return(seeds[0]) == 0.9 and greedy_return(seeds[2]) is None
    (seeds[2] / "checkpoint.pt").write_bytes(b"")  # an evaluation of an older checkpoint is stale
    stamp = (seeds[2] / "checkpoint.pt").stat().st_mtime_ns
    stale = {
        "greedy-20ep-seed1": {
            "greedy": True,
            "episodes": 20,
            "return_mean": 0.5,
            "checkpoint_mtime_ns": stamp - 1,
        }
    }
    (seeds[2] / "evaluation.json").write_text(json.dumps(stale))
    assert greedy_return(seeds[2]) is None
    stale["greedy-20ep-seed1"]["checkpoint_mtime_ns"] = stamp
    (seeds[2] / "evaluation.json").write_text(json.dumps(stale))
    assert greedy_return(seeds[2]) == 0.5
    (seeds[2] / "checkpoint.pt").unlink()
    sampled_only = {"sampled-50ep-seed1": evaluations[0]["sampled-50ep-seed1"]}
    (seeds[2] / "evaluation.json").write_text(json.dumps(sampled_only))
    assert greedy_return(seeds[2]) is None  # a file without a greedy evaluation
    refs = tmp_path / "refs.yaml"
    refs.write_text(
        yaml.safe_dump({"references": [{"env": "recall:delay12-cues4", "value": 0.95, "agent": "Paper agent",
                                        "source": "Some paper"}]})
    )  # fmt: skip
    plain, greedy = tmp_path / "plain", tmp_path / "greedy"
    assert main([str(runs_root), "--out", str(plain), "--reps", "300"]) == 0
    assert main([str(root), "--out", str(greedy), "--reps", "300", "--references", str(refs)]) == 0
    a, b = (json.loads((d / "summary.json").read_text()) for d in (plain, greedy))
    for key in ("aggregate", "bounds"):
        assert a[key] == b[key], key
    assert [r["finals"] for r in a["rows"]] == [r["finals"] for r in b["rows"]]
    markdown = (greedy / "summary.md").read_text()
    overview = markdown.split("## Greedy evaluation of the final checkpoints")[1].split("\n## ")[0]
    assert "| recall:delay12-cues4 | 0.750 (0.600), 2/3 seeds | – | 0.95 (Paper agent) |" in overview
    assert "| popgym:RepeatPreviousEasy | – | – | – |" in overview
    section = markdown.split("## recall:delay12-cues4")[1]
    assert "greedy (worst) |" in section and "| 0.750 (0.600), 2/3 seeds |" in section
    assert "greedy (worst)" not in markdown.split("## popgym:RepeatPreviousEasy")[1].split("\n## ")[0]
    assert "Greedy evaluation" not in (plain / "summary.md").read_text()
