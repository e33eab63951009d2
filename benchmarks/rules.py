"""Cost of each gradient rule against truncated BPTT on the same core: time per step and memory.

What is measured, for each hidden size N (D = N inputs, B environments, float32):

* time per environment step of one training step of the core: the forward, the backward of a
  simple loss Σ_t ⟨w, out_t⟩ (which also runs the rule's carried-credit contraction) and the rule's
  trace advance. Two modes:
    - ``step``  (M = 1): ``rule.step`` then ``backward`` at every step (fully online learning);
    - ``chunk`` (M = --chunk, 32): ``rule.unroll`` over M steps then one ``backward`` (the hybrid
      of docs/algorithms.md §2: BPTT inside the chunk, the trace carries the credit from before it).
* ``×TBPTT``: the rule's time over TBPTT's on the same core, the same N and the same M. The rules
  of one group are run round-robin (interleaved, the order reversed every other repeat) after a
  warm-up, each repeat gives one paired ratio rule/TBPTT, and the table shows the median of those
  ratios (and the median time). The machine is shared and noisy: read the ratios, not the ms.
  A ratio of 1.5 means a training step costs 1.5× what TBPTT over the same chunk costs; TBPTT
  drops all credit from before the chunk, the other rules do not (exactly for RTRL, unbiasedly
  for KF-RTRL and UORO).
* memory, per rule:
    - ``trace``: bytes of the traces the rule carries from chunk to chunk (Σ numel·element_size
      over ``rstate.traces``). It does not grow with M nor with how far back credit goes. While a
      chunk's graph is alive the old traces are still held (the backward contracts with them), so
      the peak is about twice this;
    - ``state``: bytes of the core state (what TBPTT carries, and all it carries);
    - ``act``: bytes autograd saves for the backward during one chunk of M steps (counted with
      ``torch.autograd.graph.saved_tensors_hooks``, each storage once, leaving out the parameters
      and the input chunk itself). This is what grows with M for every rule, TBPTT included.

Threads: torch.set_num_threads(--threads, default all the cores this process may use), and
OMP_WAIT_POLICY=PASSIVE unless already set (see below). The header prints the load average: on
a busy machine the ms inflate; the interleaved ratios hold up much better.

Usage:
    python -m benchmarks.rules                                   # the default table
    python -m benchmarks.rules --sizes 64 128 --batch 16 --steps 32 --repeats 7
    python -m benchmarks.rules --device cuda
    python -m benchmarks.rules --profile                         # where the time goes
"""

from __future__ import annotations

import os

# OpenMP threads that sleep when they wait, unless the caller says otherwise. With the default
# (spinning) policy, two processes that each run 2 threads on 2 shared cores starve each other:
# steps ran ~100x slower here and the ratios meant nothing. OMP_WAIT_POLICY=ACTIVE to compare.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
from dataclasses import dataclass

import torch
import torch.profiler
from torch import Tensor

from agents.cores import ELSTM, RHN, RTU
from agents.cores.base import RecurrentCore
from agents.rules import KFRTRL, RTRL, TBPTT, UORO, Rule, RuleState
from benchmarks.common import (
    Stopwatch,
    default_threads,
    format_table,
    header,
    human_bytes,
    paired_median_ratio,
    state_bytes,
    sync_device,
    timed,
    trace_bytes,
)

BASELINE = "TBPTT"


@dataclass
class Row:
    """One line of the table: one rule on one core, size and chunk length."""

    core: str
    n: int
    m: int
    rule: str
    ms_per_step: float
    ratio: float  # median over repeats of (this rule's time / TBPTT's time), same core, N and M
    trace_bytes: int
    state_bytes: int
    act_bytes: int


@dataclass
class Group:
    """A core and the rules compared on it; the rules share the core (and so its parameters)."""

    core_name: str
    core: RecurrentCore
    rules: dict[str, Rule]


# --- what is compared -----------------------------------------------------------------------


def make_groups(n: int, cores: list[str], uoro_max: int, device: torch.device) -> list[Group]:
    """The cores of size N (D = N) and, on each, the rules to compare with TBPTT."""
    groups = []
    if "elstm" in cores:
        core = ELSTM(n, n).to(device)
        groups.append(Group("ELSTM", core, {"RTRL": RTRL(core), BASELINE: TBPTT(core)}))
    if "rhn" in cores:
        core = RHN(n, n, depth=1).to(device)
        rules: dict[str, Rule] = {"KFRTRL": KFRTRL(core)}
        if n <= uoro_max:
            rules["UORO"] = UORO(core)
        rules[BASELINE] = TBPTT(core)
        groups.append(Group("RHN(d=1)", core, rules))
    if "rtu" in cores:
        core = RTU(n, n).to(device)
        groups.append(Group("RTU", core, {"RTRL": RTRL(core), BASELINE: TBPTT(core)}))
    return groups


# --- one training step of the core ------------------------------------------------------------


def train_chunks(rule: Rule, rstate: RuleState, xs: Tensor, w: Tensor, m: int) -> RuleState:
    """Run xs (T, B, D) in chunks of M steps, one backward of Σ⟨w, out⟩ per chunk.
    M = 1 uses ``rule.step``; otherwise ``rule.unroll`` (which also advances the traces)."""
    for start in range(0, xs.shape[0], m):
        if m == 1:
            out, rstate = rule.step(xs[start], rstate)
        else:
            out, rstate = rule.unroll(xs[start : start + m], rstate)
        (out * w).sum().backward()
    return rstate


# --- measurements -----------------------------------------------------------------------------


def measure_times(
    group: Group, xs: Tensor, w: Tensor, m: int, repeats: int, warmup: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Median seconds per step of each rule, and the median paired ratio to TBPTT.

    Each repeat runs every rule once over the same T = len(xs) steps, interleaved (the order is
    reversed on odd repeats so that no rule always follows the same one). Traces carry over
    from repeat to repeat, as in training, so that they are not zero."""
    device, steps = xs.device, xs.shape[0]
    states = {name: rule.initial_state(xs.shape[1]) for name, rule in group.rules.items()}
    samples: dict[str, list[float]] = {name: [] for name in group.rules}
    order = list(group.rules)
    for rep in range(warmup + repeats):
        for name in order if rep % 2 == 0 else reversed(order):
            rule = group.rules[name]
            group.core.zero_grad(set_to_none=True)

            def run(rule: Rule = rule, name: str = name) -> None:
                states[name] = train_chunks(rule, states[name], xs, w, m)

            seconds = timed(run, device)
            if rep >= warmup:
                samples[name].append(seconds / steps)
    times = {name: statistics.median(s) for name, s in samples.items()}
    ratios = {name: paired_median_ratio(s, samples[BASELINE]) for name, s in samples.items()}
    return times, ratios


def activation_bytes(rule: Rule, xs: Tensor) -> int:
    """Bytes autograd saves for the backward of one chunk xs (M, B, D), each storage counted once,
    leaving out the parameters' storages and the input chunk's (they exist without the graph)."""
    excluded = {p.untyped_storage().data_ptr() for p in rule.core.parameters()}
    excluded.add(xs.untyped_storage().data_ptr())
    seen: dict[int, int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in excluded:
            seen[storage.data_ptr()] = storage.nbytes()
        return t

    rstate = rule.initial_state(xs.shape[1])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        outs, _ = rule.unroll(xs, rstate, advance=False)
    del outs
    return sum(seen.values())


def measure_group(
    group: Group, n: int, batch: int, m: int, steps: int, repeats: int, warmup: int
) -> list[Row]:
    """All rows of one group (core and size) at chunk length M."""
    device = next(group.core.parameters()).device
    gen = torch.Generator().manual_seed(n)
    xs = torch.randn(steps, batch, n, generator=gen).to(device)
    w = torch.randn(group.core.hidden_size, generator=gen).to(device)
    times, ratios = measure_times(group, xs, w, m, repeats, warmup)
    rows = []
    for name, rule in group.rules.items():
        rstate = rule.initial_state(batch)
        rows.append(
            Row(
                core=group.core_name,
                n=n,
                m=m,
                rule=name,
                ms_per_step=1e3 * times[name],
                ratio=ratios[name],
                trace_bytes=trace_bytes(rstate),
                state_bytes=state_bytes(rstate),
                act_bytes=activation_bytes(rule, xs[:m]),
            )
        )
    return rows


# --- output -----------------------------------------------------------------------------------


def rows_table(rows: list[Row]) -> str:
    """A plain-text table, one block per (core, N, M), per-step rows before chunked ones."""
    header = ("core", "N", "M", "rule", "ms/step", "×TBPTT", "trace", "state", "act/chunk")
    lines: list[list[str]] = []
    for i, r in enumerate(rows):
        if i and (r.core, r.n, r.m) != (rows[i - 1].core, rows[i - 1].n, rows[i - 1].m):
            lines.append([])  # a blank line between blocks
        lines.append(
            [
                r.core,
                str(r.n),
                str(r.m),
                r.rule,
                f"{r.ms_per_step:.3f}",
                f"{r.ratio:.2f}",
                human_bytes(r.trace_bytes),
                human_bytes(r.state_bytes),
                human_bytes(r.act_bytes),
            ]
        )
    return format_table(header, lines, left={0, 3})


# --- profile ----------------------------------------------------------------------------------


def profile(args: argparse.Namespace, device: torch.device) -> None:
    """Top ops (by self time) of RTRL(ELSTM) and TBPTT(ELSTM) chunked, and KFRTRL(RHN) per step."""
    n, batch, m = args.profile_size, args.batch, args.chunk
    steps = max(m, args.steps)
    activities = [torch.profiler.ProfilerActivity.CPU]
    sorts = ["self_cpu_time_total"]
    if device.type == "cuda":  # also by kernel time: on a GPU the CPU side is the launches
        activities.append(torch.profiler.ProfilerActivity.CUDA)
        sorts.append("self_device_time_total")
    elstm, rhn = make_groups(n, ["elstm", "rhn"], uoro_max=0, device=device)
    configs = [
        (elstm, "RTRL", m),
        (elstm, BASELINE, m),
        (rhn, "KFRTRL", 1),
        (rhn, BASELINE, 1),
    ]
    gen = torch.Generator().manual_seed(0)
    xs = torch.randn(steps, batch, n, generator=gen).to(device)
    w = torch.randn(n, generator=gen).to(device)
    for group, name, chunk in configs:
        rule = group.rules[name]
        rstate = train_chunks(rule, rule.initial_state(batch), xs, w, chunk)  # warm-up
        with torch.profiler.profile(activities=activities) as prof:
            rstate = train_chunks(rule, rstate, xs, w, chunk)
            sync_device(device)
        print(f"\n=== {name}({group.core_name}) N={n} B={batch} M={chunk}, {steps} steps ===")
        for sort in sorts:
            print(prof.key_averages().table(sort_by=sort, row_limit=args.profile_rows))


# --- main -------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256], help="hidden sizes N (D = N)")
    p.add_argument("--batch", type=int, default=16, help="B, environments")
    p.add_argument("--chunk", type=int, default=32, help="M of the chunked mode")
    p.add_argument("--steps", type=int, default=32, help="steps per timed sample (a multiple of M)")
    p.add_argument("--repeats", type=int, default=9, help="timed samples per rule (median taken)")
    p.add_argument("--warmup", type=int, default=2, help="untimed samples per rule first")
    p.add_argument("--cores", nargs="+", default=["elstm", "rhn", "rtu"], choices=["elstm", "rhn", "rtu"])
    p.add_argument("--uoro-max", type=int, default=128, help="run UORO only for N up to this")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch.set_num_threads")
    p.add_argument("--profile", action="store_true", help="print top ops instead of the table")
    p.add_argument("--profile-size", type=int, default=256, help="N of the profiled runs")
    p.add_argument("--profile-rows", type=int, default=12, help="ops shown per profile")
    args = p.parse_args(argv)
    if args.steps % args.chunk:
        p.error(f"--steps ({args.steps}) must be a multiple of --chunk ({args.chunk})")
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    clock = Stopwatch()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(
        header(
            f"float32, B={args.batch}, D=N, {args.steps} steps per sample, "
            f"median of {args.repeats} (after {args.warmup} warm-up)",
            device,
        )
    )
    if args.profile:
        profile(args, device)
    else:
        torch.manual_seed(0)
        rows: list[Row] = []
        for n in args.sizes:
            for group in make_groups(n, args.cores, args.uoro_max, device):
                for m in (1, args.chunk):
                    rows += measure_group(group, n, args.batch, m, args.steps, args.repeats, args.warmup)
        print(rows_table(rows))
        print(
            "\nms/step: per environment step, forward + backward + trace advance; ×TBPTT: median "
            "paired ratio to TBPTT, same core, N and M;\ntrace: carried between chunks; state: "
            "core state; act/chunk: autograd-saved bytes for one chunk of M steps."
        )
    print(f"\n{clock}")


if __name__ == "__main__":
    main()
