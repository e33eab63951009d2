"""The copy task with the curriculum of Mujika, Meier & Steger 2018 ("Approximating Real-Time
Recurrent Learning with Random Kronecker Factors"): how long a string each gradient rule learns to
copy under one budget of steps.

The task. A sequence of length 2T + 1 over four input symbols (0, 1, marker, blank): T random bits,
then the marker, then T blanks during which the network must output the T bits in order. The
loss is the cross-entropy of a linear readout (N → 2) on those T output steps only, reported in
bits per character (chance: 1 bit). Each of B streams reads sequences one after another; the rule
resets state and traces at every sequence start (``episode_starts``). Parameters are updated
online: Adam after every chunk of M steps (``rule.unroll``, BPTT inside the chunk, the rule's
carried sensitivity for the credit from before it), so a sequence spans several updates.

The curriculum. T starts at 1. When the mean loss of the last ``window`` (100) finished sequences
of the current T falls below 0.15 bits per character, T grows by one (and the window restarts).
The result is the largest T reached within the budget.

Why truncation fails here. Bit i must be written into the state at step i by learned weights
and read out T + 1 steps later. TBPTT with span k (here the chunk, k = M) sees an output and its
bit in the same chunk only if T + 1 < k, so the credit that teaches writing vanishes from
T ≈ k − 1 on; past that it can only rely on a memory mechanism learned at shorter T that happens
to extend. This is the task "whose cue must be written by learned weights" of issue 9 (unlike
the recall task, where the untrained weights already write the cue). RTRL, KF-RTRL and UORO
carry the credit across chunk boundaries.

The paper (RHN, 256 units, many more steps) reached T ≈ 36 with KF-RTRL and ≈ 13 with UORO. The
defaults here are sized for a 2-core CPU: N = 64, B = 16, M = 4, Adam at lr 1e-2 (the same for
every method; 1e-3 passed T = 1 and 2 about twice as slowly) with the gradient norm clipped at 1,
and a budget of 60,000 steps per stream for each method (deterministic given --seed; about 12
minutes for the five default methods with one thread). The committed table and plot are in
benchmarks/results/diagnostics/copy_task.{md,png}.

Usage (writes benchmarks/results/diagnostics/copy_task.{md,png} and prints the table):
    python -m benchmarks.copy_task
    python -m benchmarks.copy_task --methods kfrtrl-rhn tbptt-elstm --steps 20000 --hidden 32
"""

from __future__ import annotations

import os

# sleeping OpenMP threads: see benchmarks/rules.py
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import math
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.registry import CORES, RULES, make_core, make_rule
from benchmarks.common import Stopwatch, markdown_table, provenance

__all__ = [
    "BLANK",
    "IGNORE",
    "MARKER",
    "SYMBOLS",
    "CopyChunk",
    "CopyRun",
    "CopyStreams",
    "Curriculum",
    "bits_per_char",
    "copy_sequence",
    "parse_method",
    "train_copy",
]

RESULTS = Path(__file__).resolve().parent / "results" / "diagnostics"

#: input symbols 0 and 1 are the bits themselves
MARKER, BLANK = 2, 3
SYMBOLS = 4
#: target where nothing is asked (the input phase)
IGNORE = -1


def copy_sequence(length: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """One sequence for T = ``length``: inputs (2T+1,) = bits, MARKER, BLANK × T and targets
    (2T+1,) = IGNORE × (T+1), bits. Both int64."""
    if length < 1:
        raise ValueError(f"copy length T must be >= 1, got {length}")
    bits = torch.randint(0, 2, (length,), generator=generator)
    inputs = torch.cat([bits, torch.tensor([MARKER]), torch.full((length,), BLANK)])
    targets = torch.cat([torch.full((length + 1,), IGNORE), bits])
    return inputs, targets


def bits_per_char(logits: Tensor, targets: Tensor) -> Tensor:
    """Cross-entropy in bits of logits (..., 2) at targets (...); 0 where the target is IGNORE."""
    asked = targets != IGNORE
    nats = F.cross_entropy(logits.flatten(0, -2), targets.clamp_min(0).flatten(), reduction="none")
    return nats.view(targets.shape) * asked / math.log(2)


class CopyChunk(NamedTuple):
    """M steps of B streams, time-first; all (M, B)."""

    inputs: Tensor  # int64 symbols
    targets: Tensor  # int64 bits, IGNORE where nothing is asked
    starts: Tensor  # bool: a sequence starts at step t (the state is reset before it)
    ends: Tensor  # bool: step t is the last of a sequence
    lengths: Tensor  # int64: T of the sequence step t belongs to


class CopyStreams:
    """B streams of copy sequences, one after another. A new sequence takes the T passed to
    :meth:`next_chunk` when it starts; one under way keeps its own T."""

    def __init__(self, batch: int, generator: torch.Generator | None = None) -> None:
        self.batch = batch
        self.generator = generator
        empty = torch.empty(0, dtype=torch.long)
        self._buffers = [(empty, empty, empty.bool(), empty) for _ in range(batch)]

    def _refill(self, b: int, steps: int, length: int) -> None:
        inputs, targets, starts, lengths = self._buffers[b]
        parts = [(inputs, targets, starts, lengths)]
        have = len(inputs)
        while have < steps:
            x, y = copy_sequence(length, self.generator)
            start = torch.zeros(len(x), dtype=torch.bool)
            start[0] = True
            parts.append((x, y, start, torch.full((len(x),), length)))
            have += len(x)
        self._buffers[b] = tuple(torch.cat(p) for p in zip(*parts, strict=True))

    def next_chunk(self, steps: int, length: int) -> CopyChunk:
        """The next ``steps`` steps of every stream; sequences started here have T = ``length``."""
        cols = []
        for b in range(self.batch):
            self._refill(b, steps + 1, length)  # one step beyond, to know where sequences end
            inputs, targets, starts, lengths = self._buffers[b]
            ends = starts[1 : steps + 1]
            cols.append((inputs[:steps], targets[:steps], starts[:steps], ends, lengths[:steps]))
            self._buffers[b] = (inputs[steps:], targets[steps:], starts[steps:], lengths[steps:])
        return CopyChunk(*(torch.stack(c, dim=1) for c in zip(*cols, strict=True)))


@dataclass
class Curriculum:
    """T grows by one when the mean loss of the last ``window`` finished sequences of the current
    T is below ``threshold`` bits per character; the window then restarts."""

    threshold: float = 0.15
    window: int = 100
    length: int = 1
    recent: deque = field(default_factory=deque)

    def record(self, length: int, loss: float) -> bool:
        """Add one finished sequence's loss (bits/char); True when this raised T. Sequences of an
        earlier T (under way when it grew) are ignored."""
        if length != self.length:
            return False
        self.recent.append(loss)
        if len(self.recent) > self.window:
            self.recent.popleft()
        if len(self.recent) == self.window and self.mean() < self.threshold:
            self.length += 1
            self.recent.clear()
            return True
        return False

    def mean(self) -> float:
        """Mean loss over the window so far (nan when empty)."""
        return sum(self.recent) / len(self.recent) if self.recent else math.nan


def parse_method(method: str) -> tuple[str, str]:
    """'kfrtrl-rhn' -> ('kfrtrl', 'rhn'), checking both names."""
    rule, _, core = method.partition("-")
    if rule not in RULES or core not in CORES:
        raise ValueError(
            f"method must be RULE-CORE with RULE in {sorted(RULES)} and CORE in {sorted(CORES)}, "
            f"e.g. kfrtrl-rhn or tbptt-elstm; got {method!r}"
        )
    return rule, core


@dataclass
class CopyRun:
    """One method's run: T over steps and what the budget allowed."""

    method: str
    steps: int = 0  # time steps per stream
    seconds: float = 0.0
    max_length: int = 1  # the largest T reached
    history: list[tuple[int, int, float]] = field(default_factory=list)  # (step, T, window mean)


def train_copy(
    method: str,
    steps: int,
    hidden: int = 64,
    chunk: int = 4,
    batch: int = 16,
    lr: float = 1e-2,
    max_grad_norm: float | None = 1.0,
    threshold: float = 0.15,
    window: int = 100,
    seed: int = 0,
    device: torch.device | str = "cpu",
    log_every: int = 500,
    verbose: bool = False,
) -> CopyRun:
    """Train ``method`` ('RULE-CORE') on the copy task with the curriculum for ``steps`` time
    steps per stream (rounded up to whole chunks of ``chunk``); deterministic given ``seed``."""
    rule_name, core_name = parse_method(method)
    torch.manual_seed(seed)
    core = make_core(core_name, SYMBOLS, hidden).to(device)
    rule = make_rule(rule_name, core)
    readout = nn.Linear(hidden, 2).to(device)
    params = [*core.parameters(), *readout.parameters()]
    opt = torch.optim.Adam(params, lr=lr)
    streams = CopyStreams(batch, torch.Generator().manual_seed(seed))
    curriculum = Curriculum(threshold, window)
    run = CopyRun(method, history=[(0, curriculum.length, math.nan)])
    rstate = rule.initial_state(batch)
    seq_loss = torch.zeros(batch)  # bits summed over the sequence under way, per stream
    start = time.perf_counter()
    while run.steps < steps:
        # --- collect and update: one chunk of M steps, then one Adam step
        data = streams.next_chunk(chunk, curriculum.length)
        xs = F.one_hot(data.inputs, SYMBOLS).to(device, torch.get_default_dtype())  # (M, B, 4)
        outs, rstate = rule.unroll(xs, rstate, data.starts.to(device))
        bits = bits_per_char(readout(outs), data.targets.to(device))  # (M, B)
        loss = bits.sum() * (math.log(2) / (chunk * batch))  # nats per stream-step
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if max_grad_norm is not None:
            nn.utils.clip_grad_norm_(params, max_grad_norm)
        opt.step()
        run.steps += chunk
        # --- curriculum: each sequence that finished in this chunk reports its bits per char
        bits = bits.detach().cpu()  # sync point
        for t in range(chunk):
            seq_loss.add_(bits[t])
            for b in data.ends[t].nonzero().flatten().tolist():
                length = int(data.lengths[t, b])
                if curriculum.record(length, seq_loss[b].item() / length):
                    run.history.append((run.steps, curriculum.length, math.nan))
                    if verbose:
                        print(f"  {method}: T = {curriculum.length} at step {run.steps}", flush=True)
                seq_loss[b] = 0.0
        if run.steps % log_every < chunk:
            run.history.append((run.steps, curriculum.length, curriculum.mean()))
    run.seconds = time.perf_counter() - start
    run.max_length = curriculum.length
    run.history.append((run.steps, curriculum.length, curriculum.mean()))
    return run


def plot(runs: list[CopyRun], path: Path, chunk: int, threshold: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2))
    for run in runs:
        steps, lengths, losses = zip(*run.history, strict=True)
        (line,) = ax_t.step(steps, lengths, where="post", label=f"{run.method} (max T = {run.max_length})")
        ax_l.plot(steps, losses, color=line.get_color(), lw=1, label=run.method)
    ax_t.axhline(
        chunk - 1,
        color="grey",
        ls=":",
        lw=1,
        label=f"T = k − 1 = {chunk - 1}: no bit and its output in one chunk",
    )
    ax_t.set(xlabel="time steps per stream", ylabel="copy length T reached", title="curriculum")
    ax_t.legend(fontsize=8)
    ax_l.set(
        xlabel="time steps per stream",
        ylabel="bits/char, mean over the window",
        yscale="log",
        title="loss at the current T",
    )
    ax_l.axhline(threshold, color="grey", ls=":", lw=1, label=f"threshold {threshold}")
    ax_l.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--methods",
        nargs="+",
        default=["kfrtrl-rhn", "uoro-rhn", "tbptt-rhn", "rtrl-elstm", "tbptt-elstm"],
        help="RULE-CORE names, rules from agents.registry.RULES and cores from CORES",
    )
    p.add_argument("--steps", type=int, default=60000, help="time steps per stream, per method")
    p.add_argument("--hidden", type=int, default=64, help="N")
    p.add_argument("--chunk", type=int, default=4, help="M steps per update; TBPTT's span k")
    p.add_argument("--batch", type=int, default=16, help="B parallel streams")
    p.add_argument("--lr", type=float, default=1e-2, help="Adam's learning rate")
    p.add_argument("--max-grad-norm", type=float, default=1.0, help="clip; <= 0 for none")
    p.add_argument("--threshold", type=float, default=0.15, help="bits/char that raise T")
    p.add_argument("--window", type=int, default=100, help="finished sequences averaged")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for copy_task.{md,png}")
    args = p.parse_args(argv)
    for method in args.methods:
        try:
            parse_method(method)
        except ValueError as exc:
            p.error(str(exc))
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = Stopwatch()
    runs = []
    for method in args.methods:
        print(f"{method} ...", flush=True)
        runs.append(
            train_copy(
                method,
                args.steps,
                args.hidden,
                args.chunk,
                args.batch,
                args.lr,
                args.max_grad_norm if args.max_grad_norm > 0 else None,
                args.threshold,
                args.window,
                args.seed,
                device,
                verbose=True,
            )
        )
    rows = [
        [
            r.method,
            f"k = {args.chunk} (truncated)" if parse_method(r.method)[0] == "tbptt" else "whole sequence",
            str(r.max_length),
            f"{r.steps:,}",
            f"{r.steps * args.batch:,}",
            f"{r.seconds:.0f}",
            f"{r.history[-1][2]:.3f}",
        ]
        for r in runs
    ]
    table = markdown_table(
        [
            "method",
            "credit span",
            "max T",
            "steps per stream",
            "characters",
            "wall s",
            "bits/char at max T (window)",
        ],
        rows,
    )
    setup = (
        f"N = {args.hidden}, B = {args.batch} streams, chunk M = {args.chunk} (TBPTT's span k = "
        f"{args.chunk}), Adam lr {args.lr}, clip {args.max_grad_norm}, curriculum: T += 1 when the "
        f"last {args.window} sequences average < {args.threshold} bits/char; seed {args.seed}; "
        f"budget {args.steps:,} steps per stream for every method"
    )
    command = " ".join(["python -m benchmarks.copy_task", *(sys.argv[1:] if argv is None else argv)])
    args.out.mkdir(parents=True, exist_ok=True)
    plot(runs, args.out / "copy_task.png", args.chunk, args.threshold)
    text = "\n\n".join(
        [
            "# Copy task with the KF-RTRL paper's curriculum: largest T reached",
            provenance(device),
            setup,
            table,
            f"Command: `{command}`",
            str(clock),
        ]
    )
    (args.out / "copy_task.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
