"""Peak memory of the learner as the credit horizon grows: exact RTRL against TBPTT.

What is measured: the learner of agents/learner.py (eLSTM core, N = --hidden 128, B = --batch 16,
a2c update) on benchmarks.common.SyntheticVectorEnv with one never-ending episode (no resets),
for a credit horizon H ∈ --horizons (10 100 1000 10000) steps:

* RTRL: rollout_len = --rtrl-len (10), run for H steps (H / 10 collect+update iterations). Its
  gradient is exact over the whole run, however long: the traces carry the credit.
* TBPTT: rollout_len = H, one iteration: the chunk must span the horizon to see credit that far
  back, so its graph (and rollout) grow with H.
* STREAM: stream AC(λ) (agents/stream.py, ``algo=stream``) with exact RTRL on eLSTM cores of the
  same N, one transition at a time for H steps, B = --stream-batch (1, the paper's one stream).
  Two networks (policy and value), each with its core's sensitivities and an eligibility trace
  per parameter: what it carries is fixed by the network's size, never by H.

Each (rule, H) runs in a fresh subprocess. Columns:
* ``peak Δ``: peak resident memory of the run minus that just after the learner is built (the
  Linux peak-RSS mark is reset there via /proc/self/clear_refs, then read from VmHWM; where that
  is not allowed, ru_maxrss minus the RSS at that point). The child runs with glibc's
  mmap threshold fixed at 64 KiB (MALLOC_MMAP_THRESHOLD_; --malloc-default to leave it) so that
  freed tensors go back to the OS and the peak is that of live memory, not of heap
  fragmentation. It includes what every learner allocates alike: Adam's moments, the rollout
  buffers, one chunk's autograd graph.
* ``rule state``: bytes of what the rule carries between rollouts (traces + core state).
* ``saved/chunk``: bytes autograd saves for the backward of one update's loss (the largest over
  the update's losses; torch.autograd.graph.saved_tensors_hooks, each storage once, parameters
  left out): encoder, core and heads over the chunk.
* ``rollout``: bytes of one Rollout (observations, actions, ... for M × B steps).
* ``×peak(H₀)``: peak Δ over that of the same rule at the smallest horizon and the same B.
  Target (c): RTRL flat, ≤ 1.1× at H = 10,000. The summary lines also give the growth in bytes:
  peak Δ at the smallest horizon is mostly one-time costs of the first update (code pages,
  allocator and autograd set-up, Adam's moments), so the difference is the cleaner number.

If TBPTT at a horizon would need more than --limit-gb (4) or run longer than --time-limit-s
(60; extrapolated from the previous horizon: memory linear in H, time quadratic, see
``tbptt_batch``), it runs with a smaller B instead, the table says so (column B), and the
smallest horizon is run again at that B for the ratio. At B = 16, TBPTT at H = 10,000 took
~11 min here (peak Δ 2.0G, 1 thread, a loaded machine), almost all of it in the O(M²) backward
of the per-step ``xs[t]`` slicing in agents/rules/base.py's ``Rule.unroll``.

Usage:
    python -m benchmarks.memory                           # ~4-5 min on 2 cores (STREAM at H = 10,000 ~2 min)
    python -m benchmarks.memory --quick                   # horizons 10 100 1000, ~1 min
    python -m benchmarks.memory --horizons 10 1000 --hidden 256
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/rules.py

import argparse
import json
import resource
import subprocess
import sys
import time
from typing import Any

import torch

from agents.learner import Learner
from benchmarks.common import (
    Stopwatch,
    format_table,
    header,
    human_bytes,
    state_bytes,
    synthetic_learner,
    synthetic_stream_learner,
    tensor_bytes,
    trace_bytes,
)

RULES = ("rtrl", "tbptt", "stream")
MMAP_THRESHOLD = 65536


# --- the child: one run ---------------------------------------------------------------------


def _status_kib(field: str) -> int | None:
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def reset_peak() -> tuple[int, str]:
    """Reset the peak-RSS mark to the current RSS if the kernel lets us; returns the baseline
    (bytes) and how the peak will be read."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        hwm = _status_kib("VmHWM")
        if hwm is not None:
            return hwm * 1024, "VmHWM after clear_refs"
    except OSError:
        pass
    rss = _status_kib("VmRSS")
    if rss is None:  # no /proc: fall back to the peak so far (underestimates the growth)
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "ru_maxrss"
    return rss * 1024, "ru_maxrss − RSS"


def read_peak() -> int:
    """Peak RSS (bytes) since start or since the last reset."""
    hwm = _status_kib("VmHWM")
    if hwm is not None:
        return hwm * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class SavedBytes:
    """Wraps ``learner.rollout_loss`` to count autograd-saved bytes of each loss (max kept)."""

    def __init__(self, learner: Learner) -> None:
        self.max = 0
        self._inner = learner.rollout_loss
        self._excluded = {p.untyped_storage().data_ptr() for p in learner.agent.parameters()}
        learner.rollout_loss = self  # an instance attribute: agents/ stays untouched

    def __call__(self, *args: Any, **kwargs: Any):
        seen: dict[int, int] = {}

        def pack(t: torch.Tensor) -> torch.Tensor:
            storage = t.untyped_storage()
            if storage.data_ptr() not in self._excluded:
                seen[storage.data_ptr()] = storage.nbytes()
            # Detached: returning t itself would make a saved output hold its own grad_fn, a
            # reference cycle in the graph that is never freed (a leak of one graph per update).
            return t.detach()

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            result = self._inner(*args, **kwargs)
        self.max = max(self.max, sum(seen.values()))
        return result


def child(rule: str, horizon: int, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """One run in this process; returns its measurements."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    m = args.rtrl_len if rule != "tbptt" else horizon
    iterations = max(1, horizon // m)
    if rule == "stream":
        return stream_child(horizon, batch, args)
    learner = synthetic_learner(rule, m, batch, args.hidden, args.obs_dim, update=args.update)
    saved = SavedBytes(learner)
    baseline, method = reset_peak()
    start = time.perf_counter()
    rollout_bytes = 0
    for _ in range(iterations):
        ro = learner.collect()
        rollout_bytes = tensor_bytes(list(ro))
        learner.update(ro)
        del ro
    seconds = time.perf_counter() - start
    peak = read_peak()
    return {
        "rule": rule,
        "horizon": horizon,
        "m": m,
        "batch": batch,
        "iterations": iterations,
        "peak_delta": peak - baseline,
        "peak": peak,
        "baseline": baseline,
        "method": method,
        "rule_state": trace_bytes(learner.rstate) + state_bytes(learner.rstate),
        "saved": saved.max,
        "rollout": rollout_bytes,
        "seconds": seconds,
    }


def stream_child(horizon: int, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """One streaming run: H transitions, learning at each (no rollout, no chunk graph to keep)."""
    learner = synthetic_stream_learner(args.rtrl_len, batch, args.hidden, args.obs_dim)
    baseline, method = reset_peak()
    start = time.perf_counter()
    for _ in range(horizon // args.rtrl_len):
        learner.update(learner.collect())
    seconds = time.perf_counter() - start
    peak = read_peak()
    carried = [learner.rs_actor, learner.rs_critic]
    traces = [z for opt in (learner.opt_actor, learner.opt_critic) for z in opt.traces()]
    return {
        "rule": "stream",
        "horizon": horizon,
        "m": 1,
        "batch": batch,
        "iterations": horizon,
        "peak_delta": peak - baseline,
        "peak": peak,
        "baseline": baseline,
        "method": method,
        "rule_state": sum(trace_bytes(r) + state_bytes(r) for r in carried) + tensor_bytes(traces),
        "saved": 0,
        "rollout": 0,
        "seconds": seconds,
    }


# --- the parent: one subprocess per run ------------------------------------------------------


def spawn(rule: str, horizon: int, batch: int, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    if not args.malloc_default:
        env["MALLOC_MMAP_THRESHOLD_"] = str(MMAP_THRESHOLD)
    cmd = [
        sys.executable,
        "-m",
        "benchmarks.memory",
        "--child",
        rule,
        str(horizon),
        str(batch),
        "--hidden",
        str(args.hidden),
        "--obs-dim",
        str(args.obs_dim),
        "--rtrl-len",
        str(args.rtrl_len),
        "--update",
        args.update,
        "--threads",
        str(args.threads),
    ]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{rule} H={horizon} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def tbptt_batch(prev: dict[str, Any], h: int, args: argparse.Namespace) -> tuple[int, str]:
    """B for TBPTT at horizon h and why it is lower than --batch ("" if not): lowered if the run
    would pass --limit-gb or --time-limit-s, extrapolated from the previous horizon's run, memory
    linearly in H and time quadratically (the backward of ``xs[t]`` in Rule.unroll zero-fills an
    (M, B, D) gradient per step: O(M²·B·D))."""
    scale_b = args.batch / prev["batch"]
    est_bytes = prev["peak_delta"] * (h / prev["horizon"]) * scale_b
    est_s = prev["seconds"] * (h / prev["horizon"]) ** 2 * scale_b
    batch, why = args.batch, []
    if est_bytes > args.limit_gb * 2**30:
        batch = min(batch, round(args.batch * args.limit_gb * 2**30 / est_bytes))
        why.append(f"~{human_bytes(int(est_bytes))} > --limit-gb {args.limit_gb:g}")
    if args.time_limit_s > 0 and est_s > args.time_limit_s:
        batch = min(batch, round(args.batch * args.time_limit_s / est_s))
        why.append(f"~{est_s:.0f} s > --time-limit-s {args.time_limit_s:g}")
    batch = max(1, batch)
    return batch, " and ".join(why) if batch != args.batch else ""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--horizons", type=int, nargs="+", default=[10, 100, 1000, 10000])
    p.add_argument("--hidden", type=int, default=128, help="N, and the encoder MLP's width")
    p.add_argument("--obs-dim", type=int, default=128, help="observation size of the synthetic env")
    p.add_argument("--batch", type=int, default=16, help="B, environments")
    p.add_argument("--rtrl-len", type=int, default=10, help="RTRL's rollout length M")
    p.add_argument("--update", default="a2c", choices=["a2c", "ppo"])
    p.add_argument("--stream-batch", type=int, default=1, help="streams of the STREAM rows")
    p.add_argument("--limit-gb", type=float, default=4.0, help="lower TBPTT's B above this peak")
    p.add_argument(
        "--time-limit-s", type=float, default=60.0, help="lower TBPTT's B above this run time (0: never)"
    )
    p.add_argument("--threads", type=int, default=1, help="torch threads (memory does not depend on it)")
    p.add_argument("--malloc-default", action="store_true", help="leave glibc's mmap threshold alone")
    p.add_argument("--quick", action="store_true", help="horizons 10 100 1000 only")
    p.add_argument("--child", nargs=3, metavar=("RULE", "H", "B"), help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.quick:
        args.horizons = [h for h in args.horizons if h <= 1000]
    if any(h % args.rtrl_len for h in args.horizons):
        p.error(f"every horizon must be a multiple of --rtrl-len ({args.rtrl_len})")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.child:
        rule, h, b = args.child
        print(json.dumps(child(rule, int(h), int(b), args)))
        return
    clock = Stopwatch()
    torch.set_num_threads(args.threads)
    print(
        header(
            f"eLSTM N={args.hidden}, obs {args.obs_dim} → MLP [{args.hidden}], {args.update}, "
            f"one episode without resets, each run in a fresh process"
        )
    )
    results: dict[str, list[dict[str, Any]]] = {r: [] for r in RULES}
    notes = []
    for rule in RULES:
        for h in sorted(args.horizons):
            batch, why = (args.stream_batch if rule == "stream" else args.batch), ""
            done = results[rule]
            if rule == "tbptt" and done:
                batch, why = tbptt_batch(done[-1], h, args)
            done.append(spawn(rule, h, batch, args))
            if why:
                notes.append(
                    f"TBPTT at H={h} ran with B={batch}, not {args.batch}: B={args.batch} would need {why} "
                    f"(extrapolated from H={done[-2]['horizon']}); --time-limit-s 0 to run it at "
                    f"B={args.batch}."
                )
        first, last = results[rule][0], results[rule][-1]
        if last["batch"] != first["batch"]:  # the smallest horizon again, at the same B
            results[rule].append(spawn(rule, first["horizon"], last["batch"], args))
    rows: list[list[str]] = []
    summary = []
    for rule in RULES:
        if rows:
            rows.append([])
        runs = sorted(results[rule], key=lambda x: (-x["batch"], x["horizon"]))
        for r in runs:
            ref = next(x for x in runs if x["batch"] == r["batch"])  # smallest H at this B
            rows.append(
                [
                    rule.upper(),
                    str(r["horizon"]),
                    str(r["m"]),
                    str(r["batch"]),
                    str(r["iterations"]),
                    human_bytes(r["peak_delta"]),
                    f"{r['peak_delta'] / ref['peak_delta']:.2f}",
                    human_bytes(r["rule_state"]),
                    human_bytes(r["saved"]),
                    human_bytes(r["rollout"]),
                    human_bytes(r["peak"]),
                    f"{r['seconds']:.1f}",
                ]
            )
        longest = max(runs, key=lambda x: x["horizon"])
        ref = next(x for x in runs if x["batch"] == longest["batch"])
        growth = longest["peak_delta"] - ref["peak_delta"]
        summary.append(
            f"{rule.upper()}: peak Δ(H={longest['horizon']}) / peak Δ(H={ref['horizon']}) = "
            f"{longest['peak_delta'] / ref['peak_delta']:.2f} at B={longest['batch']} "
            f"({'+' if growth >= 0 else '−'}{human_bytes(abs(growth))})"
        )
    cols = (
        "rule",
        "H",
        "M",
        "B",
        "iters",
        "peak Δ",
        "×peak(H₀)",
        "rule state",
        "saved/chunk",
        "rollout",
        "peak RSS",
        "run s",
    )
    print(format_table(cols, rows, left={0}))
    print()
    print("\n".join(summary))
    method = results[RULES[0]][0]["method"]
    print(
        f"\npeak Δ: peak RSS minus RSS after building the learner ({method}"
        f"{'' if args.malloc_default else f', MALLOC_MMAP_THRESHOLD_={MMAP_THRESHOLD}'}); "
        "peak RSS: the whole process's.\nrule state: traces + core state carried between rollouts (STREAM: "
        "both networks' sensitivities, states and eligibility traces); "
        "saved/chunk: autograd-saved bytes of one loss; rollout: one Rollout's tensors.\n"
        f"Target (c): RTRL's ratio ≤ 1.1. RTRL runs M={args.rtrl_len} for H steps; TBPTT one chunk of M=H; "
        f"STREAM H single transitions with B={args.stream_batch} (issue 20: flat in H)."
    )
    for note in notes:
        print(note)
    print(f"\n{clock}")


if __name__ == "__main__":
    main()
