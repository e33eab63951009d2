"""Data-parallel training (agents/distributed.py): K ranks give the one-process update, exactly.

The equivalence tests run 2 gloo ranks on the CPU in float64 (torch.multiprocessing); the smoke
test runs a real ``torchrun --nproc_per_node=2 train.py``.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from omegaconf import OmegaConf

from agents.checkpoint import load_checkpoint
from agents.distributed import DataParallel
from agents.learner import Rollout
from envs import make_vector_env
from tests.helpers_learner import CARTPOLE, make_learner

ROOT = Path(__file__).resolve().parents[1]
WORLD, ENVS, SEED = 2, 16, 3
#: (rule, learner options): A2C with the carried RTRL term and the TBPTT baseline, and PPO over
#: the whole batch (two epochs: several all-reduced steps per update, with the ratio clip)
CASES = {
    "rtrl": ("rtrl", {"update": "a2c"}),
    "tbptt": ("tbptt", {"update": "a2c"}),
    "rtrl-ppo": ("rtrl", {"update": "ppo", "num_epochs": 2, "num_minibatches": 1}),
}
#: CartPole: NEXT_STEP autoreset, so rows end at different times and the two ranks' minibatches
#: hold different numbers of valid steps (the weighting by count is exercised)
LEARNER = {"rollout_len": 12, "norm_adv": True, "hidden_size": 6}
UPDATES = 2  # the second update carries credit from the first rollout through the traces

# gymnasium's env checker on CartPole's unbounded observation space
pytestmark = pytest.mark.filterwarnings("ignore:.*Box observation space:UserWarning")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rows_of(ro: Rollout, rows: slice) -> Rollout:
    """The rollout of environments ``rows``: (M, B, ...) fields and next_value (B,)."""
    return Rollout(*(v[rows] if k == "next_value" else v[:, rows] for k, v in ro._asdict().items()))


def join_group(rank: int, port: int) -> DataParallel:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    return DataParallel.from_env(torch.device("cpu"))


# --- equivalence ----------------------------------------------------------------------------------


def reference(rule: str, options: dict[str, Any]) -> dict[str, Any]:
    """One process, 16 envs: the rollouts it collects and the parameters after each update."""
    learner = make_learner(CARTPOLE, "elstm", rule, num_envs=ENVS, seed=SEED, **LEARNER, **options)
    init = {k: v.clone() for k, v in learner.agent.state_dict().items()}
    rollouts, params = [], []
    for _ in range(UPDATES):
        rollouts.append(learner.collect())
        learner.update(rollouts[-1])
        params.append({k: v.clone() for k, v in learner.agent.state_dict().items()})
    learner.envs.close()
    return {"init": init, "rollouts": rollouts, "params": params}


def rank_worker(rank: int, port: int, folder: str) -> None:
    """Rank ``rank`` of 2: its 8 envs' share of each reference rollout, the same updates."""
    torch.set_default_dtype(torch.float64)
    torch.set_num_threads(1)
    ranks = join_group(rank, port)
    local = ranks.local_envs(ENVS)
    rows = slice(rank * local, (rank + 1) * local)
    out = {}
    for case, (rule, options) in CASES.items():
        ref = torch.load(Path(folder) / f"{case}.pt", weights_only=False)
        learner = make_learner(CARTPOLE, "elstm", rule, num_envs=local, seed=SEED + 1, **LEARNER, **options)
        learner.agent.load_state_dict({k: v + rank for k, v in ref["init"].items()})  # rank 0's wins
        ranks.attach(learner)
        # this rank's envs, seeded by rank, start where the reference's rows did
        envs = make_vector_env(CARTPOLE, local, seed=ranks.env_seed(SEED, ENVS))
        first_obs = torch.as_tensor(envs.reset()[0])
        envs.close()
        params = []
        for ro in ref["rollouts"]:
            learner.update(rows_of(ro, rows))
            params.append({k: v.clone() for k, v in learner.agent.state_dict().items()})
        out[case] = {"params": params, "first_obs": first_obs, "rows": (rows.start, rows.stop)}
        learner.envs.close()
    torch.save(out, Path(folder) / f"rank{rank}.pt")
    ranks.close()


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory) -> dict[str, Any]:
    """The reference of every case, and what each of 2 spawned ranks ended with."""
    folder = tmp_path_factory.mktemp("ranks")
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        refs = {case: reference(rule, options) for case, (rule, options) in CASES.items()}
    finally:
        torch.set_default_dtype(previous)
    for case, ref in refs.items():
        torch.save(ref, folder / f"{case}.pt")
    mp.spawn(rank_worker, args=(free_port(), str(folder)), nprocs=WORLD, join=True)
    ranks = [torch.load(folder / f"rank{r}.pt", weights_only=False) for r in range(WORLD)]
    return {"refs": refs, "ranks": ranks}


def max_diff(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> float:
    return max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.mark.parametrize("case", list(CASES))
def test_two_ranks_update_like_one_process(two_ranks, case):
    # 2 ranks × 8 envs, the same data: every update leaves the parameters the one-process update
    # over 16 envs does. Catches a plain (unweighted) gradient average, per-rank advantage
    # normalisation, a carried RTRL term left out of the all-reduce, or a clip before it.
    ref = two_ranks["refs"][case]
    valid = [[int(ro.valid[:, r * 8 : (r + 1) * 8].sum()) for r in range(WORLD)] for ro in ref["rollouts"]]
    assert any(a != b for a, b in valid), f"precondition: the ranks' valid counts differ ({valid})"
    for rank in two_ranks["ranks"]:
        for update, (got, want) in enumerate(zip(rank[case]["params"], ref["params"], strict=True)):
            assert max_diff(got, want) < 1e-10, f"{case}, update {update + 1}"
    moved = max_diff(ref["params"][-1], ref["init"])
    assert moved > 1e-4  # the updates did move the parameters


def test_rank_envs_get_the_one_process_seeds(two_ranks):
    # Rank r's 8 envs, seeded by rank, reset to the observations rows 8r..8r+7 of the
    # one-process env start with (ro.obs[0] is the first reset).
    first = two_ranks["refs"]["rtrl"]["rollouts"][0].obs[0]
    for rank in two_ranks["ranks"]:
        start, stop = rank["rtrl"]["rows"]
        torch.testing.assert_close(rank["rtrl"]["first_obs"].to(first.dtype), first[start:stop])


def teardown_worker(rank: int, port: int, folder: str) -> None:
    """Join, build an optimiser (torch.optim imports torch._dynamo, which imports
    torch.distributed.nn), leave; save which threads this process has left."""
    fresh = "torch.distributed.nn" not in sys.modules
    ranks = join_group(rank, port)
    torch.optim.Adam([torch.nn.Parameter(torch.ones(1))])
    ranks.close()
    threads = [(task / "comm").read_text().strip() for task in Path("/proc/self/task").iterdir()]
    torch.save({"fresh": fresh, "threads": threads}, Path(folder) / f"threads{rank}.pt")


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="lists threads through Linux's /proc")
def test_close_leaves_no_gloo_threads(tmp_path):
    # If the world group outlives close(), its gloo threads are torn down at interpreter exit,
    # which aborts about 1 torchrun job in 60 under load (SIGABRT after a clean run).
    mp.spawn(teardown_worker, args=(free_port(), str(tmp_path)), nprocs=WORLD, join=True)
    for rank in range(WORLD):
        got = torch.load(tmp_path / f"threads{rank}.pt", weights_only=False)
        assert got["fresh"], "precondition: torch.distributed.nn is first imported after init"
        assert not [t for t in got["threads"] if "gloo" in t], f"rank {rank}: {got['threads']}"


def test_bad_splits_name_the_valid_choices():
    ranks = DataParallel(rank=0, world_size=3)
    with pytest.raises(ValueError, match=r"num_envs=16 cannot be split over 3 processes.*multiple of 3"):
        ranks.local_envs(16)
    with pytest.raises(ValueError, match=r"num_envs >= 12 or algo.num_minibatches <= 2"):
        ranks.check_minibatches(6, "ppo", 4)
    ranks.check_minibatches(6, "a2c", 4)  # A2C has no minibatches
    assert (ranks.local_envs(12), ranks.env_seed(5, 12)) == (4, 5)
    assert DataParallel(rank=2, world_size=3).env_seed(5, 12) == 13


# --- train.py: rank-0 outputs, resume, signals -----------------------------------------------------

TINY = [
    "env.delay=2",
    "num_envs=4",
    "core.hidden_size=16",
    "algo.update=a2c",
    "algo.rollout_len=8",
    "progress=false",
    "torch_threads=1",
]
SUMMARY = re.compile(
    r"^(?P<env>\S+) (?P<run>\S+) seed \d+: (?P<steps>\d+) steps, .* over 2 processes.*; run in (?P<dir>.+)$"
)


def torchrun(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "train.py"]
    return subprocess.run([*cmd, *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def summaries(stdout: str) -> list[re.Match]:
    return [m for m in map(SUMMARY.match, stdout.splitlines()) if m]


def test_torchrun_job_writes_one_run(tmp_path):
    # A real torchrun job of 2 CPU processes: one summary line, one run dir with one event file,
    # and a checkpoint whose step counts both ranks' envs (4 envs × 8 steps × 4 updates).
    proc = torchrun(*TINY, "total_steps=128", f"log_dir='{tmp_path}'", "checkpoint_every=1")
    assert proc.returncode == 0, proc.stderr[-3000:]
    (line,) = summaries(proc.stdout)
    assert int(line["steps"]) == 128
    (run_dir,) = tmp_path.glob("recall/rtrl-elstm/seed0-*")
    assert Path(line["dir"]) == run_dir
    assert len(list(run_dir.glob("events.out.tfevents.*"))) == 2  # the run's, and add_hparams' own
    assert OmegaConf.load(run_dir / "config.yaml").num_envs == 4
    checkpoint = load_checkpoint(run_dir / "checkpoint.pt")
    assert checkpoint["counters"]["global_step"] == 128 and checkpoint["counters"]["updates"] == 4
    assert len(checkpoint["ranks"]) == 2
    states = [r["rule_state"]["traces"] for r in checkpoint["ranks"]]
    assert all(next(iter(t.values())).shape[0] == 2 for t in states)  # 2 envs per rank
    assert not torch.equal(*(next(iter(t.values())) for t in states))  # each rank's own traces


def train_worker(rank: int, port: int, folder: str, overrides: list[str]) -> None:
    """train() on rank ``rank`` of 2, as torchrun would start it; writes its summary."""
    from hydra import compose, initialize_config_dir

    from jobs import train

    join_group(rank, port)
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=[*TINY, *overrides])
    summary = train(cfg, run_dir=Path(folder) / "run")
    torch.save(summary, Path(folder) / f"summary{rank}.pt")


def spawn_train(folder: Path, overrides: list[str]) -> list[dict[str, Any]]:
    mp.spawn(train_worker, args=(free_port(), str(folder), overrides), nprocs=WORLD, join=True)
    return [torch.load(folder / f"summary{r}.pt", weights_only=False) for r in range(WORLD)]


@pytest.mark.slow
def test_resume_with_the_same_processes(tmp_path):
    first = spawn_train(tmp_path / "a", ["total_steps=64"])
    assert [s["global_step"] for s in first] == [64, 64]
    ckpt = first[0]["checkpoint"]
    second = spawn_train(tmp_path / "b", ["total_steps=128", f"resume='{ckpt}'"])
    assert [s["global_step"] for s in second] == [128, 128] and second[0]["updates"] == 4
    resumed = load_checkpoint(tmp_path / "b" / "run" / "checkpoint.pt")
    assert resumed["counters"]["global_step"] == 128
    # the optimiser continued: Adam's step count went on from the first run's
    assert max(int(s["step"]) for s in resumed["optimizer"]["state"].values()) == 4


@pytest.mark.slow
def test_signal_on_one_rank_stops_both(tmp_path):
    # SIGTERM to rank 1 alone: both ranks stop after the same update, rank 0 saves one checkpoint
    # and reports the signal.
    ctx = mp.start_processes(
        train_worker,
        args=(free_port(), str(tmp_path), ["total_steps=1000000000"]),
        nprocs=WORLD,
        join=False,
        start_method="spawn",
    )
    deadline = time.monotonic() + 120
    while not list((tmp_path / "run").glob("events.out.tfevents.*")):
        assert time.monotonic() < deadline, "no run started"
        assert all(p.is_alive() for p in ctx.processes), "a rank exited early"
        time.sleep(0.2)
    time.sleep(2.0)  # a few updates
    os.kill(ctx.processes[1].pid, signal.SIGTERM)
    while not ctx.join(timeout=60):
        pass
    summaries_ = [torch.load(tmp_path / f"summary{r}.pt", weights_only=False) for r in range(WORLD)]
    assert summaries_[0]["global_step"] == summaries_[1]["global_step"] > 0
    checkpoint = load_checkpoint(tmp_path / "run" / "checkpoint.pt")
    assert checkpoint["counters"]["global_step"] == summaries_[0]["global_step"]


def test_resume_needs_the_same_number_of_processes():
    with pytest.raises(ValueError, match=r"written by 2 process\(es\) and this run has 1.*= 2"):
        DataParallel().load(None, {"ranks": [{}, {}]})


def test_rppo_refuses_torchrun(monkeypatch):
    from hydra import compose, initialize_config_dir

    from jobs import train

    monkeypatch.setenv("WORLD_SIZE", "2")
    with initialize_config_dir(config_dir=str(ROOT / "configs"), version_base="1.3"):
        cfg = compose("config", overrides=["algo=rppo"])
    with pytest.raises(ValueError, match="runs in one process: start it without torchrun"):
        train(cfg)


def test_each_rank_holds_the_schedules_for_its_share_of_the_held_env_steps(monkeypatch):
    """algo.lr_decay_after and algo.ent_decay_after count all ranks' env steps, as total_steps
    does: a rank with half the envs holds for half of them, so every rank decays at the same
    global step."""
    from hydra import compose, initialize_config_dir

    from agents.training import build

    configs = str(Path(__file__).parents[1] / "configs")
    with initialize_config_dir(config_dir=configs, version_base="1.3"):
        cfg = compose(
            "config", overrides=["algo=kfrtrl", "num_envs=4", "total_steps=1000", "algo.ent_decay_after=8000"]
        )
    one = build(cfg, torch.device("cpu"))
    assert (one.total_steps, one.cfg.lr_decay_after, one.cfg.ent_decay_after) == (1000, 100_000, 8000)
    monkeypatch.setattr(DataParallel, "attach", lambda self, learner: None)  # no process group here
    half = build(cfg, torch.device("cpu"), ranks=DataParallel(rank=1, world_size=2))
    assert (half.total_steps, half.cfg.lr_decay_after, half.cfg.ent_decay_after) == (500, 50_000, 4000)
