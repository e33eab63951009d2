"""benchmarks.evaluate_suite: a suite's finished cells evaluated greedily, ours and the peer's alike,
kept in their run dirs for the report."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from benchmarks import evaluate_suite as E
from benchmarks import suite as S
from report.records import EVALUATION_FILE
from report.runs import greedy_return

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
"""


def test_finished_cells_are_evaluated_once_and_kept_for_the_report(tmp_path, monkeypatch, capsys):
    pytest.importorskip("sb3_contrib")
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE)
    cells = S.expand(S.load_suite(path), tmp_path / "s")
    for cell in cells:
        if cell.seed == 0:  # seed 1 stays pending
            assert S.run_cell(cell)["status"] == "done"
    args = [str(path), "--dir", str(tmp_path / "s"), "--episodes", "3"]
    capsys.readouterr()  # the cells' own output
    assert E.main(args) == 0
    printed = capsys.readouterr().out
    assert "2 of 4 cells finished" in printed
    assert "recall-d2/rppo/seed0: greedy : return" in printed and "over 3 episodes" in printed
    for cell in cells[:2]:
        stored = json.loads((Path(cell.run_dir) / EVALUATION_FILE).read_text())
        assert stored["greedy-3ep-seed100"]["episodes"] == 3 and stored["greedy-3ep-seed100"]["greedy"]
        assert stored["greedy-3ep-seed100"]["length_mean"] == 4.0  # recall at delay 2
        assert greedy_return(Path(cell.run_dir)) == stored["greedy-3ep-seed100"]["return_mean"]
    assert not (Path(cells[2].run_dir) / EVALUATION_FILE).exists()  # pending: not evaluated

    def refuse(*args, **kwargs):
        raise AssertionError("evaluated again")

    monkeypatch.setattr("agents.evaluate.evaluate", refuse)
    monkeypatch.setattr("peers.evaluate.evaluate", refuse)
    assert E.main(args) == 0  # from evaluation.json
    assert capsys.readouterr().out == printed
    checkpoint = Path(cells[0].run_dir) / "checkpoint.pt"
    os.utime(checkpoint, ns=(checkpoint.stat().st_atime_ns, checkpoint.stat().st_mtime_ns + 1))
    with pytest.raises(AssertionError, match="evaluated again"):  # a checkpoint written since
        E.main(args)


def test_unknown_agents_name_the_valid_ones(tmp_path, capsys):
    path = tmp_path / "tiny.yaml"
    path.write_text(SUITE)
    assert E.main([str(path), "--dir", str(tmp_path / "s"), "--agents", "nope"]) == 2
    assert "valid: rppo, rtrl-elstm" in capsys.readouterr().err
