"""report/archive.py: a run's archive reads back as the very run its run dir gives the report."""

from __future__ import annotations

import dataclasses
import gzip
import json
from pathlib import Path

import numpy as np
import pytest

from report.archive import archive_run, load_archive, load_archived_run
from report.runs import load_run
from tests.report.test_compare import curve, write_run

CONFIG = {
    "seed": 2,
    "env": {"name": "popgym", "id": "RepeatFirst", "difficulty": "Easy"},
    "algo": {"name": "rtrl"},
    "core": {"name": "rtu"},
}


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    path = tmp_path / "run"
    write_run(path, [v - 0.3 for v in curve(0.9)], seconds_per_point=1.7, config=CONFIG)
    evaluation = {
        "greedy-20ep-seed100": {"greedy": True, "episodes": 20, "return_mean": 0.875},
        "sampled-20ep-seed100": {"greedy": False, "episodes": 20, "return_mean": 0.5},
    }
    (path / "evaluation.json").write_text(json.dumps(evaluation))
    return path


def test_an_archive_loads_as_the_run_dir_loads(run_dir: Path, tmp_path: Path) -> None:
    archive = archive_run(run_dir, tmp_path / "cells" / "t" / "a" / "seed2.json.gz", extra={"cell": {"x": 1}})
    from_dir, from_archive = load_run(run_dir), load_archived_run(archive)
    assert from_archive.path == archive
    for field in dataclasses.fields(from_dir):
        a, b = getattr(from_dir, field.name), getattr(from_archive, field.name)
        if isinstance(a, np.ndarray):
            np.testing.assert_array_equal(a, b)  # every point, exactly: the same final and threshold times
            assert a.dtype == b.dtype
        elif field.name != "path":
            assert a == b, field.name
    assert (from_archive.env, from_archive.agent, from_archive.seed) == (
        "popgym:RepeatFirstEasy",
        "rtrl-rtu",
        2,
    )
    assert from_archive.greedy == 0.875 and from_archive.final == from_dir.final
    assert load_archive(archive)["extra"] == {"cell": {"x": 1}}
    # Agent keys split labels from the archived config as from config.yaml.
    assert load_archived_run(archive, agent_keys=["core.name"]).agent == "rtrl-rtu[name=rtu]"


def test_archiving_twice_writes_the_same_bytes(run_dir: Path, tmp_path: Path) -> None:
    first = archive_run(run_dir, tmp_path / "a.json.gz").read_bytes()
    second = archive_run(run_dir, tmp_path / "b.json.gz").read_bytes()
    assert first == second  # no timestamp in the gzip header: a re-archived cell makes no diff
    assert not list(tmp_path.glob(".*.tmp"))


def test_bad_archives_and_other_tags_raise(run_dir: Path, tmp_path: Path) -> None:
    archive = archive_run(run_dir, tmp_path / "a.json.gz")
    with pytest.raises(ValueError, match="archives the tag 'rollout/ep_rew_mean', not 'time/fps'"):
        load_archived_run(archive, tag="time/fps")
    with pytest.raises(ValueError, match="never logged 'nope'"):
        archive_run(run_dir, tmp_path / "b.json.gz", tag="nope")
    (tmp_path / "plain.json.gz").write_text("{}")
    with pytest.raises(ValueError, match="not a run archive"):
        load_archive(tmp_path / "plain.json.gz")
    (tmp_path / "other.json.gz").write_bytes(gzip.compress(b'{"format": 99}'))
    with pytest.raises(ValueError, match="not a run archive of format 1"):
        load_archive(tmp_path / "other.json.gz")
