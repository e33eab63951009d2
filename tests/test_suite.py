"""The memory-task suite (benchmarks/suite.py): configs compose, cells expand and resume, e2e run."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from fnmatch import fnmatch
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from agents.checkpoint import load_checkpoint
from benchmarks import suite as S
from benchmarks.suites import run as R
from report.runs import agent_label, env_label
from report.targets import load_targets
from report.thresholds import load_bounds

ROOT = Path(__file__).resolve().parents[1]
SUITES = sorted(path.stem for path in (ROOT / "configs" / "suite").glob("*.yaml"))
TINY_SUITE = """
seeds: [0]
common: [num_envs=2, progress=false, torch_threads=1]
agents:
  rtrl-elstm: [algo=rtrl, core.hidden_size=8]
  tbptt-lstm: [algo=tbptt, core=lstm, core.hidden_size=8]
tasks:
  recall-d2:
    overrides: [env=recall, env.delay=2, policy.prev_action=false]
    total_steps: 32
"""


def _write(tmp_path: Path, text: str, name: str = "tiny.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def _check_composes(suite: S.Suite, pairs: set[tuple[str, str]]) -> set[tuple[str, str]]:
    """Compose train.py's config for each (task, agent) as the cell would, and check it: two suite
    agents never share a report label on one env (their runs would merge into one row).

    Returns the report's (env, agent) labels of the pairs."""
    cells = {(c.task, c.agent): c for c in S.expand(suite, "/nonexistent") if c.seed == suite.seeds[0]}
    labels = set()
    owner: dict[tuple[str, str], str] = {}  # (env, agent) report label -> suite agent
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        for task, agent in sorted(pairs):
            cfg = compose("config", overrides=list(cells[(task, agent)].overrides))
            OmegaConf.resolve(cfg)
            assert cfg.total_steps == suite.tasks[task].total_steps
            assert cfg.seed == suite.seeds[0]
            algo = next(o.split("=")[1] for o in suite.agents[agent] if o.startswith("algo="))
            assert cfg.algo.name == algo.removesuffix("_zoo"), (task, agent)  # rppo_zoo: the peer, rppo
            env = next(o.split("=")[1] for o in suite.tasks[task].overrides if o.startswith("env="))
            # the env group's own adapter name (env=novel is a gym env, for example)
            assert cfg.env.name == OmegaConf.load(ROOT / "configs" / "env" / f"{env}.yaml").name, (
                task,
                agent,
            )
            config = OmegaConf.to_container(cfg)
            label = (env_label(config["env"], config["policy"]), agent_label(config, suite.agent_keys))
            assert owner.setdefault(label, agent) == agent, (label, owner[label], agent)
            labels.add(label)
    return labels


@pytest.mark.parametrize("name", SUITES)
def test_every_task_and_agent_composes(name):
    """Each task with its first agent, each agent with its first task (fast)."""
    suite = S.load_suite(name)
    assert len(suite.seeds) >= 3
    cells = S.expand(suite, "/nonexistent")
    pairs = {next((c.task, c.agent) for c in cells if c.task == t) for t in suite.tasks}
    pairs |= {next((c.task, c.agent) for c in cells if c.agent == a) for a in suite.agents}
    labels = _check_composes(suite, pairs)
    # The report reads the targets and bounds from the suite's file, as the suite does.
    if suite.targets:
        assert load_targets(suite.path) == list(suite.targets)
    if suite.bounds:
        assert load_bounds(suite.path) == suite.bounds
    # Targets name the report's labels; a typo would leave a target pending for ever.
    envs, agents = {env for env, _ in labels}, {agent for _, agent in labels}
    for target in suite.targets:
        for pattern in target.envs:
            assert any(fnmatch(env, pattern) for env in envs if env), (target.name, pattern, envs)
        assert {*target.agents, *target.versus.values()} - {"best"} <= agents, (target.name, agents)
    assert set(suite.bounds) <= envs, set(suite.bounds) - envs  # a typo'd label would bound nothing
    assert {ref.env for ref in suite.references} <= envs  # a reference is printed under its env
    for pattern in suite.aggregate_envs or ():
        assert any(fnmatch(env, pattern) for env in envs), pattern


@pytest.mark.slow
@pytest.mark.parametrize("name", SUITES)
def test_every_cell_composes(name):
    suite = S.load_suite(name)
    _check_composes(suite, {(c.task, c.agent) for c in S.expand(suite, "/nonexistent")})


def test_memory_suite_covers_the_issue():
    suite = S.load_suite("memory")
    assert {"rtrl-elstm", "rtrl-rtu", "kfrtrl-rhn", "uoro-rhn", "rppo-defaults", "rppo-zoo"} <= set(
        suite.agents
    )
    # The peer as users run it (issue 18): sb3-contrib's defaults, and rl-zoo's presets where it has
    # them; the matched-work row (n_steps 8) is left to benchmarks/throughput.py.
    assert suite.agents["rppo-defaults"] == ("algo=rppo",)
    assert not any("algo.n_steps" in o for overrides in suite.agents.values() for o in overrides)
    cells = S.expand(suite, "/nonexistent")
    assert {c.task for c in cells if c.agent == "rppo-zoo"} == {"cartpole-novel", "pendulum-novel"}
    assert "rppo" not in suite.agents  # its dirs hold the matched-work runs: the new row has its own
    assert {"tbptt-elstm", "tbptt-rtu", "tbptt-rhn", "tbptt-lstm", "tbptt-gru"} <= set(suite.agents)
    overrides = {name: set(task.overrides) for name, task in suite.tasks.items()}
    popgym = {o.split("=")[1] for ov in overrides.values() for o in ov if o.startswith("env.id=")}
    assert {"RepeatPrevious", "RepeatFirst", "CountRecall", "Autoencode", "PositionOnlyCartPole"} <= popgym
    assert any("env=procgen" in ov for ov in overrides.values())
    assert any("env=atari" in ov and "env.frame_stack=1" in ov for ov in overrides.values())
    assert any("env.distractors=true" in ov for ov in overrides.values())
    recall = [ov for ov in overrides.values() if "env=recall" in ov]
    assert any("policy.prev_action=false" in ov for ov in recall)
    assert any("policy.prev_action=false" not in ov for ov in recall)


def test_expand_counts_and_layout(tmp_path):
    extra_task = """
  recall-d3:
    overrides: [env=recall, env.delay=3]
    total_steps: 16
    agents: [rtrl-elstm]
"""
    text = TINY_SUITE.replace("seeds: [0]", "seeds: [0, 1, 2]") + extra_task
    suite = S.load_suite(_write(tmp_path, text))
    cells = S.expand(suite, tmp_path / "s")
    assert len(cells) == 3 * (2 + 1)  # seeds x (agents of recall-d2 + the one of recall-d3)
    assert [c.seed for c in cells] == sorted(c.seed for c in cells)  # seed first
    assert len({c.run_dir for c in cells}) == len(cells)
    cell = cells[0]
    assert Path(cell.run_dir) == (tmp_path / "s" / "recall-d2" / "rtrl-elstm" / "seed0").resolve()
    assert cell.overrides[-2:] == ("seed=0", "total_steps=32")
    assert S.Cell.from_dict(json.loads(json.dumps(cell.to_dict()))) == cell


def test_slices_select_tasks_and_agents_by_pattern(tmp_path):
    cells = S.expand(S.load_suite("memory"), tmp_path)
    picked = S.select(cells, ["repeat-*"], ["rtrl-rtu", "rppo-d*"])
    assert {c.task for c in picked} == {"repeat-previous-easy", "repeat-first-easy", "repeat-previous-medium"}
    assert {c.agent for c in picked} == {"rtrl-rtu", "rppo-defaults"} and len(picked) == 3 * 2 * 3
    assert S.select(cells, None, None) == list(cells)
    with pytest.raises(ValueError, match="no cell matches"):
        S.select(cells, ["procgen-maze-memory"], ["rtrl-rtu"])  # each matches, together nothing
    # a pattern that matches nothing names the valid ones: often an override typed after --tasks
    typo = r"--tasks 'hydra.launcher.n_jobs=1' matches no task; valid: .*recall-d4"
    with pytest.raises(ValueError, match=typo):
        S.select(cells, ["repeat-*", "hydra.launcher.n_jobs=1"], None)
    with pytest.raises(ValueError, match=r"--agents 'nope' matches no agent; valid: .*rtrl-rtu"):
        S.select(cells, None, ["nope"])


def test_finished_cells_are_skipped(tmp_path):
    suite = S.load_suite(_write(tmp_path, TINY_SUITE))
    cells = S.expand(suite, tmp_path / "s")
    done, todo = cells
    Path(done.run_dir).mkdir(parents=True)
    (Path(done.run_dir) / S.MARKER).write_text(json.dumps({"cell": done.to_dict()}))
    Path(todo.run_dir).mkdir(parents=True)
    (Path(todo.run_dir) / "checkpoint.pt").write_bytes(b"")  # interrupted: no marker
    assert S.pending_cells(cells) == [todo]
    # A marker written for other overrides (the config changed since) is an error, not a skip.
    changed = S.expand(S.load_suite(_write(tmp_path, TINY_SUITE.replace("32", "48"))), tmp_path / "s")
    with pytest.raises(ValueError, match="delete it to re-run"):
        S.pending_cells(changed)


@pytest.mark.parametrize(
    ("text", "match"),
    [
        (TINY_SUITE.replace("env.delay=2", "algo.lr=0.1"), "may only set env, policy"),
        (TINY_SUITE.replace("core=lstm", "env=popgym"), "may only set algo, core"),
        (TINY_SUITE.replace("torch_threads=1", "seed=3"), "may not set 'seed'"),
        (TINY_SUITE.replace("total_steps: 32", "total_steps: 0"), "total_steps"),
        (TINY_SUITE.replace("total_steps: 32", "total_steps: 32\n    agents: [nope]"), "valid agents"),
        (TINY_SUITE + "budget: 3\n", "valid keys"),
        (TINY_SUITE.replace("seeds: [0]", "seeds: []"), "seeds"),
        (
            TINY_SUITE.replace(
                "[algo=tbptt, core=lstm, core.hidden_size=8]", "{overrides: [algo=tbptt], seeds: [5]}"
            ),
            "distinct seeds of the suite's",
        ),
        (
            TINY_SUITE.replace(
                "[algo=tbptt, core=lstm, core.hidden_size=8]", "{overrides: [algo=tbptt], tasks: [x]}"
            ),
            "tasks must list tasks of the suite",
        ),
        (
            TINY_SUITE.replace(
                "[algo=tbptt, core=lstm, core.hidden_size=8]", "{overrides: [algo=tbptt], n: 1}"
            ),
            "valid keys: overrides, seeds, tasks",
        ),
        (TINY_SUITE + "references: [{env: e, value: 1.0}]\n", "missing"),
        (TINY_SUITE + "aggregate_envs: recall\n", "aggregate_envs must be a list"),
        (TINY_SUITE + "agent_keys: algo.lr\n", "agent_keys must be a list of dotted config keys"),
        (TINY_SUITE + "targets: [{name: t, envs: [e], agents: [a], check: best}]\n", "unknown check 'best'"),
        (TINY_SUITE + "bounds: {'recall:x': [1.0, 0.0]}\n", "high > low"),
        (TINY_SUITE + "threshold: {'recall:*': true}\n", "threshold must be a number or map"),
    ],
)
def test_bad_suite_configs_raise(tmp_path, text, match):
    with pytest.raises(ValueError, match=match):
        S.load_suite(_write(tmp_path, text))


def test_unknown_suite_names_the_valid_ones(capsys):
    assert S.main(["nosuchsuite", "--list"]) == 2
    err = capsys.readouterr().err
    assert "memory" in err and "quick" in err


def test_failed_cell_is_recorded_and_not_marked(tmp_path):
    text = TINY_SUITE.replace("env.delay=2", "env.delay=-1")  # composes, fails when the env is built
    cell = S.expand(S.load_suite(_write(tmp_path, text)), tmp_path / "s")[0]
    result = S.run_cell(cell)
    assert result["status"] == "failed" and "delay must be an integer" in result["error"]
    assert (Path(cell.run_dir) / S.ERROR_FILE).is_file()
    assert not S.cell_finished(cell)


def test_a_signalled_worker_starts_no_further_cell(tmp_path, monkeypatch):
    """A loky worker runs cell after cell: once SIGTERM/SIGINT has stopped one, it starts no other."""
    import jobs

    calls = []

    def stopped_train(cfg, run_dir):
        calls.append(run_dir)
        return {"global_step": 8, "stop_signal": int(signal.SIGTERM)}

    monkeypatch.setattr(jobs, "train", stopped_train)
    monkeypatch.setattr(R, "_stopped_by", None)  # this process's flag, restored after the test
    first, second = S.expand(S.load_suite(_write(tmp_path, TINY_SUITE)), tmp_path / "s")[:2]
    assert S.run_cell(first)["status"] == "stopped"
    result = S.run_cell(second)
    assert result["status"] == "stopped" and result["signal"] == signal.SIGTERM
    assert calls == [Path(first.run_dir)]  # the second cell never trained
    assert not S.cell_finished(first) and not S.cell_finished(second)


def test_a_cell_another_live_process_holds_is_skipped_and_a_stale_lock_is_taken_over(tmp_path, monkeypatch):
    """Two overlapping slices of a suite in one dir never train one cell into one run dir."""
    import socket

    import jobs

    calls = []

    def fake_train(cfg, run_dir):
        calls.append(run_dir)
        return {"global_step": 8, "stop_signal": None}

    monkeypatch.setattr(jobs, "train", fake_train)
    monkeypatch.setattr(R, "_stopped_by", None)
    cell = S.expand(S.load_suite(_write(tmp_path, TINY_SUITE)), tmp_path / "s")[0]
    lock = Path(cell.run_dir).parent / f".{Path(cell.run_dir).name}.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(f"{socket.gethostname()} {os.getppid()}")  # a live process: pytest's parent
    result = S.run_cell(cell)
    assert result["status"] == "busy" and str(os.getppid()) in result["holder"] and calls == []
    assert lock.is_file()  # not ours: left alone
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True)
    lock.write_text(f"{socket.gethostname()} {int(gone.stdout)}")  # its process has exited
    assert S.run_cell(cell)["status"] == "stopped" and calls == [Path(cell.run_dir)]
    assert not lock.exists()  # taken over, then released
    lock.write_text(f"another-host {os.getpid()}")  # cannot be checked from here: held
    assert S.run_cell(cell)["status"] == "busy"
    lock.write_text("")  # created this instant by another process, not yet written: held
    assert S.run_cell(cell)["status"] == "busy" and lock.is_file()
    old = time.time() - 61  # empty for a minute: its taker died between creating and writing it
    os.utime(lock, (old, old))
    assert S.run_cell(cell)["status"] == "stopped" and len(calls) == 2 and not lock.exists()
    Path(cell.run_dir).mkdir()
    Path(cell.run_dir, S.MARKER).write_text(json.dumps({"cell": cell.to_dict()}))
    assert S.run_cell(cell)["status"] == "done" and len(calls) == 2  # another slice finished it


def test_report_calls_the_compare_cli(tmp_path, monkeypatch):
    """The report is `python -m report.compare DIR --out OUT --threshold X`, run as a CLI."""
    fake = tmp_path / "fake_compare.py"
    fake.write_text(
        "import json, sys\nopen(sys.argv[sys.argv.index('--out') + 1], 'w').write(json.dumps(sys.argv[1:]))\n"
    )
    monkeypatch.setenv("PYTHONPATH", f"{tmp_path}")
    out = tmp_path / "argv.json"
    assert S.report(tmp_path / "s", out, {"*": 0.9}, module="fake_compare") == 0
    assert json.loads(out.read_text()) == [str(tmp_path / "s"), "--out", str(out), "--threshold", "0.9"]
    # Per-env thresholds go as GLOB=X.
    assert S.report(tmp_path / "s", out, {"recall:*": 0.9, "popgym:*": 0.8}, module="fake_compare") == 0
    assert json.loads(out.read_text())[3:] == ["--threshold", "recall:*=0.9", "--threshold", "popgym:*=0.8"]
    # A suite with targets and bounds hands its own config to the report, which reads them.
    assert S.report(tmp_path / "s", out, None, module="fake_compare", bounds=tmp_path / "t.yaml") == 0
    assert json.loads(out.read_text())[3:] == ["--bounds", str(tmp_path / "t.yaml")]
    assert S.report(tmp_path / "s", out, None, module="fake_compare", targets=tmp_path / "t.yaml") == 0
    assert json.loads(out.read_text()) == [
        str(tmp_path / "s"),
        "--out",
        str(out),
        "--targets",
        str(tmp_path / "t.yaml"),
    ]
    # Inside the repo the paths are relative to it, so the report's quoted command is portable.
    assert S._from_root(ROOT / "runs" / "suite" / "quick") == "runs/suite/quick"


def _suite_cli(*args: str) -> subprocess.CompletedProcess:
    # A process of its own, as users run it. In-process, after the compare tests, the joblib
    # launch wrote to a pytest capture stream already closed and took pytest down ("lost
    # sys.stderr"); a suite run never shares a process with a test runner.
    return subprocess.run(
        [sys.executable, "-m", "benchmarks.suite", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_two_cell_suite_runs_through_joblib_and_resumes(tmp_path):
    path = _write(tmp_path, TINY_SUITE)
    run = tmp_path / "s"
    first = _suite_cli(str(path), "--dir", str(run), "--out", str(tmp_path / "report"), "--no-report")
    assert first.returncode == 0, first.stderr[-3000:]
    cells = S.expand(S.load_suite(path), run, tmp_path / "report" / "cells")
    for cell in cells:
        record = json.loads((Path(cell.run_dir) / S.MARKER).read_text())
        assert record["cell"] == cell.to_dict()
        assert Path(cell.archive).is_file()  # archived as it finished, though no report was asked for
        assert record["summary"]["global_step"] >= cell.total_steps
        assert (Path(cell.run_dir) / "config.yaml").is_file()
        assert list(Path(cell.run_dir).glob("events.out.tfevents.*"))
    assert S.pending_cells(cells) == []
    assert len(list((run / ".launch").iterdir())) == 1
    # Run again: nothing is launched.
    again = _suite_cli(str(path), "--dir", str(run), "--out", str(tmp_path / "report"), "--no-report")
    assert again.returncode == 0 and "2 done, 0 to run" in again.stdout
    assert len(list((run / ".launch").iterdir())) == 1
    # An interrupted cell (checkpoint, no marker) resumes from its checkpoint.
    (Path(cells[0].run_dir) / S.MARKER).unlink()
    assert S.run_cell(cells[0]) == {"status": "done", "cell": cells[0].to_dict()}  # its archive: done
    Path(cells[0].archive).unlink()
    result = S.run_cell(cells[0])
    assert result["status"] == "done" and result["resumed"]
    assert sys.modules["benchmarks.suite"] is S


def test_sigterm_to_the_suite_alone_stops_its_workers_and_starts_no_cell(tmp_path):
    # `kill <suite pid>`: the 2 joblib workers stop their cells, saved, and neither of the 2 other
    # cells starts (before, the suite died and its workers trained on, orphaned).
    text = TINY_SUITE.replace("seeds: [0]", "seeds: [0, 1]").replace(
        "torch_threads=1]", "torch_threads=1, checkpoint_every=1]"
    )
    text = text.replace("total_steps: 32", "total_steps: 100000000")
    path = _write(tmp_path, text)
    run = tmp_path / "s"
    cells = S.expand(S.load_suite(path), run)
    suite = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.suite", str(path), "--dir", str(run), "--out", str(tmp_path / "o"),
         "--no-report", "hydra.launcher.n_jobs=2"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 120
        while len(running := [c for c in cells if (Path(c.run_dir) / "checkpoint.pt").is_file()]) < 2:
            assert suite.poll() is None and time.monotonic() < deadline, "two cells never ran"
            time.sleep(0.2)
        workers = {int(R.lock_path(Path(c.run_dir)).read_text().split()[1]) for c in running}
        assert len(workers) == 2 and suite.pid not in workers  # joblib's workers, not the suite
        suite.send_signal(signal.SIGTERM)
        out, _ = suite.communicate(timeout=120)  # EOF only once the workers, which share stdout, exit
    finally:
        suite.kill()
        for pid in workers:  # on a failure, leave no orphan training 10^8 steps
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    assert suite.returncode == 1, out[-3000:]  # "not finished": every cell resumes next time
    assert out.count(" not started (") == 2 and out.count("(stopped by SIGTERM)") == 2, out[-3000:]
    for cell in cells:
        assert not R.lock_path(Path(cell.run_dir)).exists() and not S.cell_finished(cell)
        if cell in running:  # stopped part-way, saved
            steps = load_checkpoint(Path(cell.run_dir) / "checkpoint.pt")["counters"]["global_step"]
            assert 0 < steps < cell.total_steps
        else:
            assert not Path(cell.run_dir).exists()


def test_a_stop_file_keeps_a_cell_from_starting(tmp_path, monkeypatch):
    monkeypatch.setattr(R, "_stopped_by", None)
    cell = S.expand(S.load_suite(_write(tmp_path, TINY_SUITE)), tmp_path / "s")[0]
    stop = tmp_path / S.STOP_FILE
    stop.touch()
    assert S.run_cell(cell, stop_file=stop) == {"status": "stopped", "cell": cell.to_dict(), "signal": 15}
    assert not Path(cell.run_dir).exists() and not R.lock_path(Path(cell.run_dir)).exists()


def test_a_signal_while_a_cell_is_held_is_recorded_not_fatal(monkeypatch):
    monkeypatch.setattr(R, "_stopped_by", None)
    before = signal.getsignal(signal.SIGTERM)
    with R._signals_recorded():
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.1)  # Python runs the handler between bytecodes of the main thread
    assert R._stopped_by == signal.SIGTERM and signal.getsignal(signal.SIGTERM) is before


@pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads parents from Linux's /proc")
def test_sigterm_reaches_the_suites_own_lock_holders_only(tmp_path):
    # One cell held by a child of this process (a worker), one by a grandchild (standing for
    # another slice's worker): SIGTERM here signals the child alone, writes the stop file, and
    # hands SIGTERM back to the previous handler for the next one.
    cells = S.expand(S.load_suite(_write(tmp_path, TINY_SUITE)), tmp_path / "s")
    sleep = [sys.executable, "-c", "import time; time.sleep(60)"]
    child = subprocess.Popen(sleep)
    parent_of_other = subprocess.Popen(
        [sys.executable, "-c", f"import subprocess; print(subprocess.Popen({sleep!r}).pid, flush=True)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    other = int(parent_of_other.stdout.readline())
    try:
        for cell, pid in zip(cells, (child.pid, other), strict=True):
            lock = R.lock_path(Path(cell.run_dir))
            lock.parent.mkdir(parents=True, exist_ok=True)
            lock.write_text(f"{socket.gethostname()} {pid}")
        stop = tmp_path / S.STOP_FILE
        before = signal.getsignal(signal.SIGTERM)
        with S._sigterm_stops_the_cells(cells, stop):
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)
            assert signal.getsignal(signal.SIGTERM) is before  # a second one: as without the suite
        assert child.wait(timeout=10) == -signal.SIGTERM and stop.is_file()
        assert Path(f"/proc/{other}").exists()  # not the suite's child: left alone
    finally:
        child.kill()
        with contextlib.suppress(ProcessLookupError):
            os.kill(other, signal.SIGKILL)
        parent_of_other.wait()


def test_an_interrupted_rppo_cell_resumes_from_sb3s_zip(tmp_path):
    pytest.importorskip("sb3_contrib")
    text = TINY_SUITE.replace(
        "  tbptt-lstm: [algo=tbptt, core=lstm, core.hidden_size=8]",
        "  rppo: [algo=rppo, algo.n_steps=8, algo.batch_size=16, algo.n_epochs=1, core.hidden_size=8]",
    ).replace("total_steps: 32", "total_steps: 48")
    cells = [c for c in S.expand(S.load_suite(_write(tmp_path, text)), tmp_path / "s") if c.agent == "rppo"]
    first = S.run_cell(cells[0])
    assert first["status"] == "done" and not first["resumed"]
    run_dir = Path(cells[0].run_dir)
    assert (run_dir / "checkpoint.zip").is_file()
    (run_dir / S.MARKER).unlink()
    again = S.run_cell(cells[0])
    assert again["status"] == "done" and again["resumed"]


def test_popgym_and_novel_suites_are_the_issues():
    popgym = S.load_suite("popgym")
    cells = S.expand(popgym, "/nonexistent")
    ours = {"rtrl-elstm", "rtrl-rtu", "kfrtrl-rhn", "tbptt-gru"}
    assert set(popgym.agents) == ours | {"rppo"}
    easy = {
        "count-recall-easy",
        "repeat-first-easy",
        "concentration-easy",
        "autoencode-easy",
        "higher-lower-easy",
    }
    assert {c.task for c in cells if c.agent == "rppo"} == easy
    assert {c.seed for c in cells if c.agent == "rppo"} == {0, 1}
    assert all(c.total_steps >= 1_000_000 for c in cells)
    for agent in ours:
        assert len([c for c in cells if c.agent == agent]) == 9 * 3
    assert len(cells) == 9 * 3 * 4 + 5 * 2
    assert set(popgym.bounds) >= {"popgym:ConcentrationEasy", "popgym:HigherLowerEasy"}
    novel = S.load_suite("novel")
    budgets = {t: task.total_steps for t, task in novel.tasks.items()}
    assert sorted(budgets.values()) == [100_000, 100_000, 300_000]
    assert {"rppo", "rppo-zoo"} <= set(novel.agents)
    assert {ref.env for ref in novel.references} == {
        "gym:CartPoleNoVel-v1", "gym:PendulumNoVel-v1", "gym:MountainCarContinuousNoVel-v0"
    }  # fmt: skip


def test_agents_seeds_and_tasks_subset_the_cells(tmp_path):
    text = (
        TINY_SUITE.replace("seeds: [0]", "seeds: [0, 1, 2]").replace(
            "  tbptt-lstm: [algo=tbptt, core=lstm, core.hidden_size=8]",
            "  tbptt-lstm: {overrides: [algo=tbptt, core=lstm], seeds: [0, 2], tasks: [recall-d3]}",
        )
        + "  recall-d3:\n    overrides: [env=recall, env.delay=3]\n    total_steps: 16\n"
    )
    suite = S.load_suite(_write(tmp_path, text))
    cells = S.expand(suite, tmp_path / "s")
    assert {(c.task, c.agent, c.seed) for c in cells if c.agent == "tbptt-lstm"} == {
        ("recall-d3", "tbptt-lstm", 0), ("recall-d3", "tbptt-lstm", 2)
    }  # fmt: skip
    assert len([c for c in cells if c.agent == "rtrl-elstm"]) == 2 * 3
    assert suite.agents["tbptt-lstm"] == ("algo=tbptt", "core=lstm")


def test_list_says_done_running_or_pending_with_the_step(tmp_path):
    from torch.utils.tensorboard import SummaryWriter

    text = TINY_SUITE.replace("seeds: [0]", "seeds: [0, 1]")
    suite = S.load_suite(_write(tmp_path, text))
    done, running, stopped, failed = S.expand(suite, tmp_path / "s")[:4]
    Path(done.run_dir).mkdir(parents=True)
    (Path(done.run_dir) / S.MARKER).write_text(json.dumps({"cell": done.to_dict()}))
    for cell in (running, stopped):
        writer = SummaryWriter(cell.run_dir)
        writer.add_scalar("time/fps", 100.0, 16)
        writer.add_scalar("time/fps", 100.0, 24)
        writer.close()
    Path(failed.run_dir).mkdir(parents=True)
    (Path(failed.run_dir) / S.ERROR_FILE).write_text("Traceback")
    host = socket.gethostname()
    lock = Path(running.run_dir).parent / f".{Path(running.run_dir).name}.lock"
    lock.write_text(f"{host} {os.getppid()}")  # a live process: pytest's parent
    gone = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True
    )
    stale = Path(stopped.run_dir).parent / f".{Path(stopped.run_dir).name}.lock"
    stale.write_text(f"{host} {int(gone.stdout)}")  # left by a process that has exited
    states = [S.cell_status(c) for c in (done, running, stopped, failed)]
    assert [s.status for s in states] == ["done", "running", "pending", "pending"]
    assert states[1].step == 24 and states[2].step == 24
    assert states[1].describe(32) == "running at 24/32 steps"
    assert states[2].describe(32) == "pending (stopped at 24/32 steps)"
    assert states[3].describe(32) == "pending (failed)"
    listed = _suite_cli(
        str(tmp_path / "tiny.yaml"), "--dir", str(tmp_path / "s"), "--out", str(tmp_path), "--list"
    )
    assert listed.returncode == 0, listed.stderr[-2000:]
    assert "1 done, 1 running, 2 pending" in listed.stdout
    assert "running at 24/32 steps: recall-d2/" in listed.stdout


def test_a_part_way_suite_reports_its_pending_cells(tmp_path):
    """The report of a suite with one finished cell: the other cells show as pending, and an
    agent with no finished run does not crash it."""
    pytest.importorskip("rliable")
    path = _write(tmp_path, TINY_SUITE)
    cells = S.expand(S.load_suite(path), tmp_path / "s")
    assert S.run_cell(cells[0])["status"] == "done"
    out = tmp_path / "report"
    result = _suite_cli(str(path), "--dir", str(tmp_path / "s"), "--out", str(out), "--report-only")
    assert result.returncode == 0, result.stderr[-3000:]
    assert not Path(cells[1].run_dir).exists()  # --report-only trains nothing
    listed = json.loads((out / "cells.json").read_text())["cells"]
    assert [(c["agent"], c["status"]) for c in listed] == [("rtrl-elstm", "done"), ("tbptt-lstm", "pending")]
    summary = json.loads((out / "summary.json").read_text())
    assert [row["agent"] for row in summary["rows"]] == ["rtrl-elstm"]
    env = "recall:delay2-cues4 (no prev action)"
    assert summary["cells"] == [
        {"env": env, "agent": "rtrl-elstm", "done": 1, "running": 0, "pending": 0},
        {"env": env, "agent": "tbptt-lstm", "done": 0, "running": 0, "pending": 1},
    ]
    markdown = (out / "summary.md").read_text()
    assert "2 cells: 1 done, 0 running, 1 pending" in markdown
    assert "| pending |" in markdown  # tbptt-lstm's overview cell
    # A slice's report is still the whole suite's: the other agent's cell stays in it as pending.
    result = _suite_cli(
        str(path), "--dir", str(tmp_path / "s"), "--out", str(out), "--report-only", "--agents", "rtrl-elstm"
    )
    assert result.returncode == 0, result.stderr[-3000:]
    listed = json.loads((out / "cells.json").read_text())["cells"]
    assert [(c["agent"], c["status"]) for c in listed] == [("rtrl-elstm", "done"), ("tbptt-lstm", "pending")]


def test_an_archived_cell_stays_done_without_its_run_dir(tmp_path):
    """A finished cell is archived beside the report; on a machine without its run dir (another
    --dir here) the suite counts it done, runs it not again, and reports it from the archive."""
    pytest.importorskip("rliable")
    path = _write(tmp_path, TINY_SUITE)
    out = tmp_path / "report"
    cells = S.expand(S.load_suite(path), tmp_path / "s", out / "cells")
    assert S.run_cell(cells[0])["status"] == "done"
    assert Path(cells[0].archive).is_file()  # archived as it finished
    before = _suite_cli(str(path), "--dir", str(tmp_path / "s"), "--out", str(out), "--report-only")
    assert before.returncode == 0, before.stderr[-3000:]
    rows = json.loads((out / "summary.json").read_text())["rows"]
    # Another machine: no run dirs, the archives committed.
    elsewhere = S.expand(S.load_suite(path), tmp_path / "elsewhere", out / "cells")
    assert S.pending_cells(elsewhere) == [elsewhere[1]]
    assert S.cell_status(elsewhere[0]).status == "done"
    listed = _suite_cli(str(path), "--dir", str(tmp_path / "elsewhere"), "--out", str(out), "--list")
    assert "1 done, 0 running, 1 pending" in listed.stdout
    after = _suite_cli(str(path), "--dir", str(tmp_path / "elsewhere"), "--out", str(out), "--report-only")
    assert after.returncode == 0, after.stderr[-3000:]
    assert json.loads((out / "summary.json").read_text())["rows"] == rows
    assert not (tmp_path / "elsewhere").exists()
    # An archive for other overrides (the suite config edited since) is an error, not a skip.
    changed = S.expand(
        S.load_suite(_write(tmp_path, TINY_SUITE.replace("32", "48"))), tmp_path / "e2", out / "cells"
    )
    with pytest.raises(ValueError, match=r"seed0\.json\.gz is for the overrides"):
        S.pending_cells(changed)


def test_a_suite_that_declares_evaluate_keeps_each_cells_evaluation_in_its_archive(tmp_path, monkeypatch):
    """``evaluate:`` evaluates a cell's final checkpoint as it finishes, before it is archived: the
    archive, which outlives the run dir and its checkpoint, keeps the evaluation."""
    from report.archive import load_archive

    path = _write(tmp_path, TINY_SUITE + "evaluate: {episodes: 2, seed: 7}\n")
    suite = S.load_suite(path)
    assert suite.evaluate == S.EvaluationSpec(episodes=2, seed=7, mode="greedy")
    cells = S.expand(suite, tmp_path / "s", tmp_path / "out" / "cells")
    assert S.Cell.from_dict(json.loads(json.dumps(cells[0].to_dict()))) == cells[0]  # to workers
    assert S.run_cell(cells[0])["status"] == "done"
    stored = load_archive(cells[0].archive)["evaluations"]
    assert list(stored) == ["greedy-2ep-seed7"] and stored["greedy-2ep-seed7"]["episodes"] == 2
    assert stored == json.loads((Path(cells[0].run_dir) / "evaluation.json").read_text())

    def refuse(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr("agents.evaluate.evaluate", refuse)
    assert S.keep_finished(cells[0]) == Path(cells[0].archive)  # cached: not evaluated again
    # Without evaluate:, nothing is evaluated.
    plain = S.expand(S.load_suite(_write(tmp_path, TINY_SUITE, "plain.yaml")), tmp_path / "p", tmp_path / "o")
    assert plain[0].evaluate is None
    assert S.run_cell(plain[0])["status"] == "done"
    assert load_archive(plain[0].archive)["evaluations"] == {}


@pytest.mark.parametrize(
    ("entry", "match"),
    [
        ("evaluate: 20", "a mapping of episodes, mode, seed"),
        ("evaluate: {episodes: 0}", "episodes must be an integer >= 1"),
        ("evaluate: {mode: best}", "mode must be one of both, greedy, sampled"),
        ("evaluate: {runs: 3}", "a mapping of episodes, mode, seed"),
    ],
)
def test_bad_evaluate_entries_raise(tmp_path, entry, match):
    with pytest.raises(ValueError, match=match):
        S.load_suite(_write(tmp_path, TINY_SUITE + entry + "\n"))


def test_a_learner_key_added_since_drifts_where_the_algo_now_sets_it_off_its_base(tmp_path):
    """A config saved before a learner key existed trained at the key's base value
    (configs/learner/default.yaml). Where the algo now sets it otherwise (as algo=kfrtrl did with
    lr_decay_after) the cell has drifted; at its base value, or as a hold past the run's budget
    (32 steps) with no final value (a constant lr either way), it has not."""
    agents = {
        "base": "[algo=rtrl]",
        "held": "[algo=rtrl, algo.lr_decay_after=16]",
        "held-past-budget": "[algo=rtrl, algo.lr_decay_after=64]",
        "held-past-budget-decayed": "[algo=rtrl, algo.lr_decay_after=64, algo.lr_final=0.0]",
    }
    suite = (
        "seeds: [0]\ncommon: [num_envs=2, progress=false, torch_threads=1]\nagents:\n"
        + "".join(f"  {agent}: {overrides}\n" for agent, overrides in agents.items())
        + "tasks:\n  recall-d2:\n    overrides: [env=recall, env.delay=2]\n    total_steps: 32\n"
    )
    cells = {c.agent: c for c in S.expand(S.load_suite(_write(tmp_path, suite)), tmp_path / "s")}
    for cell in cells.values():
        saved = OmegaConf.to_container(S.compose_cell(cell), resolve=True)
        del saved["algo"]["lr_decay_after"]  # the config as the code before the key saved it
        Path(cell.run_dir).mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(saved), Path(cell.run_dir) / "config.yaml")
    assert {agent: S.config_drift(cell) for agent, cell in cells.items()} == {
        "base": [],
        "held": ["algo.lr_decay_after: absent (then None) -> 16"],
        "held-past-budget": [],
        "held-past-budget-decayed": ["algo.lr_decay_after: absent (then None) -> 64"],
    }


def test_a_default_changed_after_its_key_came_drifts_on_the_tasks_where_it_acts(tmp_path):
    """log_std_min came with no floor and defaults to -3 since: a config saved before the key
    trained without a floor. That changes a run with Box actions (Pendulum) only; an explicit
    null is the old run."""
    suite = (
        "seeds: [0]\ncommon: [num_envs=2, progress=false, torch_threads=1]\nagents:\n"
        "  floor: [algo=rtrl]\n  none: [algo=rtrl, algo.log_std_min=null]\ntasks:\n"
        "  pendulum:\n    overrides: [env=novel, env.id=PendulumNoVel-v1]\n    total_steps: 32\n"
        "  recall-d2:\n    overrides: [env=recall, env.delay=2]\n    total_steps: 32\n"
    )
    cells = S.expand(S.load_suite(_write(tmp_path, suite)), tmp_path / "s")
    for cell in cells:
        saved = OmegaConf.to_container(S.compose_cell(cell), resolve=True)
        del saved["algo"]["log_std_min"]  # the config as the code before the key saved it
        Path(cell.run_dir).mkdir(parents=True)
        OmegaConf.save(OmegaConf.create(saved), Path(cell.run_dir) / "config.yaml")
    assert {f"{c.task}/{c.agent}": S.config_drift(c) for c in cells} == {
        "pendulum/floor": ["algo.log_std_min: absent (then None) -> -3.0"],
        "pendulum/none": [],
        "recall-d2/floor": [],
        "recall-d2/none": [],
    }


def test_a_finished_cell_whose_defaults_changed_since_stops_the_suite(tmp_path):
    """Cells match on their overrides, so a default changed under a finished cell (here: the
    learning rate its config.yaml, or its archive, saved) would pass for today's config. The suite
    names the key and runs nothing; --list and --report-only warn. A key added since is no drift
    (a learner key's own rule: the test above)."""
    import gzip

    path = _write(tmp_path, TINY_SUITE)
    out = tmp_path / "report"
    cells = S.expand(S.load_suite(path), tmp_path / "s", out / "cells")
    assert S.run_cell(cells[0])["status"] == "done"
    assert S.config_drift(cells[0]) == []
    config = Path(cells[0].run_dir) / "config.yaml"
    saved = OmegaConf.load(config)
    saved.algo.lr = 0.5
    del saved.core.kwargs  # a key the old code lacked: no drift
    saved.log_dir = "elsewhere"  # where it ran: no drift
    OmegaConf.save(saved, config)
    assert S.config_drift(cells[0]) == ["algo.lr: 0.5 -> 0.001"]
    run = _suite_cli(str(path), "--dir", str(tmp_path / "s"), "--out", str(out), "--no-report")
    assert run.returncode == 2
    assert "error: recall-d2/rtrl-elstm/seed0 finished with another config" in run.stderr
    assert "algo.lr: 0.5 -> 0.001" in run.stderr and not Path(cells[1].run_dir).exists()  # ran nothing
    listed = _suite_cli(str(path), "--dir", str(tmp_path / "s"), "--out", str(out), "--list")
    assert listed.returncode == 0 and "warning: recall-d2/rtrl-elstm/seed0" in listed.stderr
    # The archive alone (another machine) says the same.
    archive = Path(cells[0].archive)
    data = json.loads(gzip.decompress(archive.read_bytes()))
    data["config"]["algo"]["lr"] = 0.5
    archive.write_bytes(gzip.compress(json.dumps(data).encode()))
    elsewhere = S.expand(S.load_suite(path), tmp_path / "elsewhere", out / "cells")
    assert S.config_drift(elsewhere[0]) == ["algo.lr: 0.5 -> 0.001"]
