"""Data-parallel scaling: training steps/s of one run over K processes, as a ratio to K = 1.

Each K is a real ``torchrun --standalone --nproc_per_node=K`` job of this module's worker, which
builds train.py's learner for its rank (``agents.training.build`` with ``agents.distributed.DataParallel``):
its share of the envs, rank 0's weights, gradients all-reduced once per optimiser step. Weak
scaling: every rank steps ``--envs-per-rank`` envs, so the run has K times as many, and the
ideal ratio is K. The worker warms up, then times ``--updates`` updates (collect + update)
between two barriers; steps/s counts every rank's env steps. ``all-reduce`` is the share of the
update spent in the gradient all-reduce: the communication plus waiting for the slowest rank
(timed with the device synchronised, which itself costs a little on a GPU).

Tasks (train.py's configs, one torch thread per rank):
* ``recall``: the default job, exact-RTRL eLSTM N = 128, PPO, rollout 8.
* ``atari``: Breakout, Nature CNN → RTRL eLSTM N = 256, frame_stack 4, fused Adam (as
  ``benchmarks.atari``).

Devices: ``--device auto`` takes CUDA when there is one, each rank on GPU LOCAL_RANK (nccl),
else the CPU (gloo). The default K list doubles up to the number of GPUs (CUDA) or of cores
(CPU), so the same command measures a multi-GPU box. On a 2-core CPU only K = 2 is meaningful,
and K processes share the cores with their envs (and the ALE's threads).

Usage:
    python -m benchmarks.scaling                         # recall and atari, K = 1, 2, ...
    python -m benchmarks.scaling --tasks recall --ks 1 2 4 --updates 40
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/rules.py

import argparse
import json
import subprocess
import sys
import time

import torch

from benchmarks.common import Stopwatch, compose_config, format_table, provenance, sync_device

TASKS: dict[str, list[str]] = {
    "recall": [],
    "atari": [
        "env=atari",
        "env.game=breakout",
        "env.frame_stack=4",
        "core.hidden_size=256",
        "algo.fused_optimizer=true",
    ],
}
MARK = "SCALING "  # rank 0's result line


def worker(args: argparse.Namespace) -> None:
    """One rank of a torchrun job: time ``args.updates`` updates after ``args.warmup``."""
    import torch.distributed as dist

    from agents.distributed import DataParallel
    from agents.runs import resolve_device
    from agents.training import build

    ranks = DataParallel.from_env(resolve_device(args.device))
    k = ranks.world_size
    cfg = compose_config([*TASKS[args.task], f"num_envs={k * args.envs_per_rank}", "torch_threads=1"])
    torch.set_num_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    ranks.check_minibatches(cfg.num_envs, cfg.algo["update"], cfg.algo.num_minibatches)
    learner = build(cfg, ranks.device, ranks)
    ranks.seed_rank(cfg.seed)
    allreduce = [0.0]
    if learner.average_gradients is not None:
        average = learner.average_gradients

        def timed_average(valid: torch.Tensor) -> None:
            sync_device(ranks.device)
            start = time.perf_counter()
            average(valid)
            sync_device(ranks.device)
            allreduce[0] += time.perf_counter() - start

        learner.average_gradients = timed_average

    def barrier() -> None:
        sync_device(ranks.device)
        if k > 1:
            dist.barrier()

    for _ in range(args.warmup):
        learner.update(learner.collect())
    barrier()
    allreduce[0], t_update, start, step0 = 0.0, 0.0, time.perf_counter(), learner.global_step
    for _ in range(args.updates):
        ro = learner.collect()
        t0 = time.perf_counter()
        learner.update(ro)
        sync_device(ranks.device)
        t_update += time.perf_counter() - t0
    barrier()
    seconds = time.perf_counter() - start
    steps = (learner.global_step - step0) * k
    if ranks.is_main:
        result = {
            "k": k,
            "envs": cfg.num_envs,
            "steps_per_s": steps / seconds,
            "allreduce_share": allreduce[0] / t_update,
            "device": str(ranks.device),
        }
        print(MARK + json.dumps(result), flush=True)
    learner.envs.close()
    ranks.close()


def run_k(args: argparse.Namespace, task: str, k: int) -> dict:
    """One torchrun job of K workers; rank 0's result."""
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        f"--nproc_per_node={k}",
        "-m",
        "benchmarks.scaling",
        "--worker",
        f"--task={task}",
        f"--device={args.device}",
        f"--envs-per-rank={args.envs_per_rank}",
        f"--updates={args.updates}",
        f"--warmup={args.warmup}",
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith(MARK)]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"{task} K={k} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(lines[-1][len(MARK) :])


def default_ks(device: str) -> list[int]:
    """1, 2, 4, ... up to the GPUs (CUDA) or the cores (CPU)."""
    cuda = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    most = torch.cuda.device_count() if cuda else (len(os.sched_getaffinity(0)) or 1)
    ks = [1]
    while ks[-1] * 2 <= most:
        ks.append(ks[-1] * 2)
    return ks


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--ks", type=int, nargs="+", help="process counts K (default: 1, 2, 4, ... ≤ GPUs/cores)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (each rank on its own GPU)")
    p.add_argument("--envs-per-rank", type=int, default=16)
    p.add_argument("--updates", type=int, default=12, help="timed updates per job")
    p.add_argument("--warmup", type=int, default=2, help="untimed updates first")
    p.add_argument("--timeout", type=float, default=900, help="seconds per torchrun job")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--task", choices=list(TASKS), help=argparse.SUPPRESS)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.worker:
        worker(args)
        return
    clock = Stopwatch()
    ks = args.ks or default_ks(args.device)
    print(provenance(args.device))
    print(f"weak scaling: {args.envs_per_rank} envs per rank; {args.warmup} + {args.updates} updates per job")
    rows = []
    for task in args.tasks:
        base = None
        for k in ks:
            r = run_k(args, task, k)
            base = r["steps_per_s"] if base is None else base
            ratio = r["steps_per_s"] / base
            share = f"{100 * r['allreduce_share']:.1f}%" if k > 1 else ""
            rows.append(
                [
                    task,
                    str(k),
                    str(r["envs"]),
                    f"{r['steps_per_s']:.0f}",
                    f"{ratio:.2f}",
                    f"{ratio / k:.2f}",
                    share,
                ]
            )
            print(f"  {task} K={k}: {r['steps_per_s']:.0f} steps/s on {r['device']}", flush=True)
        rows.append([])
    print()
    print(format_table(("task", "K", "envs", "steps/s", "×K=1", "efficiency", "all-reduce"), rows[:-1]))
    print(
        "efficiency: ×K=1 / K (1 is linear); all-reduce: its share of the update time, "
        "waiting for the slowest rank included"
    )
    print(f"\n{clock}")


if __name__ == "__main__":
    main()
