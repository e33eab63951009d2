"""Host↔device synchronisations per step of the learner's rollout loop, on a CUDA device.

``torch.cuda.set_sync_debug_mode("warn")`` makes every synchronising CUDA call (a blocking copy,
``.item()``, ``nonzero``, a stream synchronise) issue a warning. This counts them over
``learner.collect()`` (M steps each), after a warm-up, grouped by the line that made them.

The envs step on the host, so one transfer per step is inherent: the sampled actions go to the
host before ``envs.step`` (the learner's ``action.cpu()``, marked ``inherent``). Every other line
in the table is a sync the rollout loop could avoid, e.g. by copying observations from pinned
memory with ``non_blocking=True``. The target is none besides the inherent one.

Usage (needs CUDA):
    python -m benchmarks.rollout_sync                      # recall and atari (train.py's configs)
    python -m benchmarks.rollout_sync --tasks recall --rollouts 8
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/rules.py

import argparse
import linecache
import sys
import warnings
from collections import Counter

import torch

from benchmarks.common import build_learner, format_table, provenance

TASKS: dict[str, list[str]] = {
    "recall": [],
    "atari": ["env=atari", "env.frame_stack=4", "core.hidden_size=256", "algo.fused_optimizer=true"],
}
INHERENT = "action.cpu()"  # the source text of the one transfer the host-side env needs


def count_syncs(learner, rollouts: int) -> tuple[Counter[tuple[str, int]], int]:
    """Synchronising CUDA calls by (file, line) over ``rollouts`` collects, and the env steps."""
    sites: Counter[tuple[str, int]] = Counter()
    steps = 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            for _ in range(rollouts):
                learner.collect()
                steps += learner.cfg.rollout_len
        finally:
            torch.cuda.set_sync_debug_mode("default")
    for w in caught:
        if "synchroniz" in str(w.message):
            sites[(w.filename, w.lineno)] += 1
    return sites, steps


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--tasks", nargs="+", default=list(TASKS), choices=list(TASKS))
    p.add_argument("--rollouts", type=int, default=4, help="collects counted (M steps each)")
    p.add_argument("--device", default="cuda")
    args = p.parse_args(argv)
    if not torch.cuda.is_available():
        print("benchmarks.rollout_sync needs a CUDA device; torch sees none", file=sys.stderr)
        return 2
    print(provenance(args.device))
    print(f"device: {torch.cuda.get_device_name(torch.device(args.device))}")
    avoidable_total = 0
    for task in args.tasks:
        learner, _ = build_learner([*TASKS[task], f"device={args.device}"], device=args.device)
        learner.update(learner.collect())  # warm-up: allocations, cuDNN autotuning
        sites, steps = count_syncs(learner, args.rollouts)
        learner.envs.close()
        rows = []
        for (filename, lineno), n in sites.most_common():
            source = linecache.getline(filename, lineno).strip()
            kind = "inherent" if INHERENT in source else "avoidable"
            avoidable_total += n if kind == "avoidable" else 0
            where = f"{os.path.relpath(filename)}:{lineno}"
            rows.append([where, f"{n / steps:.2f}", kind, source[:70]])
        print(f"\n{task}: {steps} env steps per env over {args.rollouts} rollouts")
        print(format_table(("where", "per step", "kind", "code"), rows or [["(none)", "0", "", ""]]))
    print(f"\navoidable syncs in the rollout loop: {avoidable_total} (target 0)")
    return 0 if avoidable_total == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
