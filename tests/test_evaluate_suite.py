"""benchmarks.evaluate_suite: a suite's finished cells evaluated greedily, ours and the peer's alike."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks import evaluate_suite as E
from benchmarks import suite as S
from envs import make_vector_env

SUITE = """
seeds: [0, 1]
common: [num_envs=2, progress=false, torch_threads=1]
agents:
  rtrl-elstm: [algo=rtrl, core.hidden_size=8]
  rppo: [algo=rppo, algo.n_steps=8, algo.batch_size=16, algo.n_epochs=1, core.hidden_size=8]
tasks:
  recall-d2:
    overrides: [env=recall, env.delay=2]
    total_steps: 32
references:
  - env: "{label}"
    value: 0.75
    budget: 32
    agent: "a published agent"
    source: "a test"
"""


def test_finished_cells_are_evaluated_once_and_tabled_beside_the_references(tmp_path, monkeypatch):
    pytest.importorskip("sb3_contrib")
    env = make_vector_env({"name": "recall", "delay": 2}, num_envs=1, seed=0)
    label = env.env_name
    env.close()
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE.format(label=label))
    cells = S.expand(S.load_suite(path), tmp_path / "s")
    for cell in cells:
        if cell.seed == 0:  # seed 1 stays pending
            assert S.run_cell(cell)["status"] == "done"
    out = tmp_path / "evaluation.md"
    args = [str(path), "--dir", str(tmp_path / "s"), "--episodes", "3", "--out", str(out)]
    assert E.main(args) == 0
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith(f"| recall-d2 ({label})"))
    cols = [c.strip() for c in row.strip("|").split("|")]
    assert cols[1].endswith(", 1/2 seeds") and cols[2].endswith(", 1/2 seeds")  # rtrl-elstm, rppo
    assert cols[3] == "0.75 (a published agent)"
    for cell in cells[:2]:
        stored = json.loads((Path(cell.run_dir) / E.RESULTS_FILE).read_text())
        assert stored["greedy-3ep-seed100"]["episodes"] == 3 and stored["greedy-3ep-seed100"]["greedy"]
        assert stored["greedy-3ep-seed100"]["length_mean"] == 4.0  # recall at delay 2
    assert not (Path(cells[2].run_dir) / E.RESULTS_FILE).exists()

    def refuse(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr("agents.evaluate.evaluate", refuse)
    monkeypatch.setattr("peers.evaluate.evaluate", refuse)
    assert E.main(args) == 0 and out.read_text() == text  # from evaluation.json


def test_unknown_agents_name_the_valid_ones(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE.format(label="recall:x"))
    assert E.main([str(path), "--dir", str(tmp_path / "s"), "--agents", "nope"]) == 2
    assert "valid: rppo, rtrl-elstm" in capsys.readouterr().err
