"""How often a run's PPO updates moved the policy far: per run directory, the updates whose
``train/approx_kl`` exceeds a threshold, the largest approx_kl and pre-clip gradient norm, the
lowest policy entropy, and the final return (as the reports compute it, report/records.py).

The clipped objective bounds a step only where the ratio stays near 1; once a Gaussian policy's σ
has collapsed, one Adam step can move its mean by many σ, and approx_kl shows it (issue 19's
std_floor study). The run directories must still hold their TensorBoard files (the suites'
archives keep the return only).

Usage:
    python -m benchmarks.update_spikes /work/runs-floor --agent-keys algo.log_std_min
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.common import format_table
from report.runs import find_run_dirs, load_run

TAGS = ("train/approx_kl", "train/grad_norm", "train/entropy")


def spikes(path: Path, threshold: float) -> dict[str, Any] | None:
    """The update statistics of one run directory; None if it logged no update."""
    from tensorboard.backend.event_processing import event_accumulator as ea

    acc = ea.EventAccumulator(str(path), size_guidance={ea.SCALARS: 0})  # 0: keep every point
    acc.Reload()
    if any(tag not in acc.Tags()["scalars"] for tag in TAGS):
        return None
    kl, grad_norm, entropy = ([p.value for p in acc.Scalars(tag)] for tag in TAGS)
    return {
        "spikes": sum(v > threshold for v in kl),
        "updates": len(kl),
        "max_kl": max(kl),
        "max_grad_norm": max(grad_norm),
        "min_entropy": min(entropy),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("dirs", nargs="+", help="run directories, or directories above them")
    parser.add_argument("--threshold", type=float, default=1.0, help="approx_kl above this is a spike")
    parser.add_argument("--agent-keys", nargs="*", default=[], help="dotted config keys that split agents")
    args = parser.parse_args()
    rows = []
    for path in find_run_dirs(args.dirs):
        row = spikes(path, args.threshold)
        run = load_run(path, agent_keys=args.agent_keys)  # labels and final return as the reports'
        if row is None or run is None:
            continue
        cells = (
            f"{run.final:.3f}",
            f"{row['spikes']} / {row['updates']}",
            f"{row['max_kl']:.3g}",
            f"{row['max_grad_norm']:.3g}",
            f"{row['min_entropy']:.2f}",
        )
        rows.append((run.env, run.agent, str(run.seed), *cells))
    rows.sort(key=lambda r: r[:3])
    kl = f"updates kl>{args.threshold:g}"
    cols = ["env", "agent", "seed", "final", kl, "max kl", "max grad norm", "min entropy"]
    print(format_table(cols, rows, left={0, 1}))


if __name__ == "__main__":
    main()
