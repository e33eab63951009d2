"""Training speed of this tree against another commit's, measured side by side in one run.

Each side is a fresh process (``python -c``) in its own tree, this one and a temporary
``git worktree`` of REV, that builds train.py's learner for the same overrides, warms up
(--warmup iterations, and torch.compile's compilation where it is on), then times ``--iterations``
training iterations (``learner.update(learner.collect())``) and prints steps/s. The two sides take
turns, the order flipped every round (--rounds); the table shows each side's median steps/s, and
``×REV`` the median of the per-round ratios (this tree over REV), which cancels most of the load
of a shared machine. Each side may get its own overrides (--set for both, --set-here, --set-there),
e.g. to time a flag this tree has and REV lacks.

Usage:
    python -m benchmarks.against HEAD~3                            # the default job, 5 rounds
    python -m benchmarks.against 2c7d01c --set num_envs=64 --rounds 3
    python -m benchmarks.against 2c7d01c --set-here algo.compile=true
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.common import Stopwatch, format_table, header

ROOT = Path(__file__).resolve().parent.parent

#: run in each tree: build the learner as train.py does, warm up, time, print steps/s
SNIPPET = """
import os, sys, time
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
import torch
torch.set_num_threads({threads})
from benchmarks.common import build_learner
learner, cfg = build_learner({overrides!r}, device={device!r})
for _ in range({warmup}):
    learner.update(learner.collect())
if {device!r} != "cpu":
    torch.cuda.synchronize()
t0 = time.perf_counter()
for _ in range({iterations}):
    learner.update(learner.collect())
if {device!r} != "cpu":
    torch.cuda.synchronize()
steps = {iterations} * cfg.num_envs * cfg.algo.rollout_len
print("STEPS_PER_S", steps / (time.perf_counter() - t0))
"""


def steps_per_second(tree: Path, overrides: list[str], args: argparse.Namespace) -> float:
    """One timed process in ``tree``: steps/s of training iterations."""
    code = SNIPPET.format(
        threads=args.threads,
        overrides=overrides,
        device=args.device,
        warmup=args.warmup,
        iterations=args.iterations,
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=tree, capture_output=True, text=True, check=False)
    for line in out.stdout.splitlines():
        if line.startswith("STEPS_PER_S"):
            return float(line.split()[1])
    raise RuntimeError(f"timing in {tree} failed:\n{out.stderr[-3000:]}")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("rev", help="the commit to compare with, e.g. HEAD~1")
    p.add_argument("--set", nargs="*", default=[], help="train.py overrides for both sides")
    p.add_argument("--set-here", nargs="*", default=[], help="overrides for this tree only")
    p.add_argument("--set-there", nargs="*", default=[], help="overrides for REV only")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=150, help="timed iterations per process")
    p.add_argument("--warmup", type=int, default=10, help="untimed iterations per process")
    p.add_argument("--threads", type=int, default=1, help="torch threads (train.py's default: 1)")
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    args = p.parse_args(argv)
    clock = Stopwatch()
    sha = subprocess.run(
        ["git", "rev-parse", "--short", args.rev], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.strip()
    print(header(f"this tree against {sha}; overrides {args.set or 'none'}"))
    with tempfile.TemporaryDirectory(prefix="against-") as tmp:
        there = Path(tmp) / "tree"
        subprocess.run(
            ["git", "worktree", "add", "--detach", str(there), sha],
            cwd=ROOT,
            check=True,
            capture_output=True,
        )
        try:
            sides = {
                "here": (ROOT, [*args.set, *args.set_here]),
                sha: (there, [*args.set, *args.set_there]),
            }
            rates: dict[str, list[float]] = {name: [] for name in sides}
            for r in range(args.rounds):
                for name in list(sides) if r % 2 == 0 else reversed(list(sides)):
                    tree, overrides = sides[name]
                    rates[name].append(steps_per_second(tree, overrides, args))
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(there)], cwd=ROOT, check=False)
    ratio = statistics.median(a / b for a, b in zip(rates["here"], rates[sha], strict=True))
    rows = [
        [name, " ".join(sides[name][1]) or "-", f"{statistics.median(v):,.0f}", f"{min(v):,.0f}"]
        for name, v in rates.items()
    ]
    print(format_table(("tree", "overrides", "steps/s (median)", "worst"), rows, left={0, 1}))
    print(f"\n×{sha}: {ratio:.2f} (median of {args.rounds} paired rounds)\n{clock}")


if __name__ == "__main__":
    main()
