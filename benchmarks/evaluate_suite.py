"""A suite's finished cells evaluated the way rl-zoo publishes: the final checkpoint's greedy policy.

python -m benchmarks.evaluate_suite novel --dir runs/suite/novel [--episodes 20] [--mode greedy]
python -m benchmarks.suite novel --dir runs/suite/novel --report-only   # the report shows them

A suite's report (report.compare) gives the training episodes' returns, under the sampling policy
that is still exploring. rl-zoo's ``benchmark.md`` evaluates one trained agent's deterministic
policy instead. This evaluates every finished cell's final checkpoint that way: our agents'
``checkpoint.pt`` with :func:`agents.evaluate.evaluate`, the peer's ``checkpoint.zip`` with
:func:`peers.evaluate.evaluate`, with the same episodes and evaluation seed, each env giving an
equal share of the episodes. It prints each cell's result; the suite's report (report.compare,
which reads run dirs only) shows them per task and agent, mean over seeds (worst seed), beside the
training returns and the suite's ``references:``.

Each cell's result is kept in its run dir (``evaluation.json``, keyed by mode, episodes and seed),
so a rerun evaluates only the cells finished since. A suite that declares ``evaluate:`` has its
cells evaluated as they finish (benchmarks/suites/evaluation.py) and sets the defaults here.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from benchmarks.suite import ROOT, cell_finished, default_out, expand, load_suite, select, suite_names
from benchmarks.suites.evaluation import EvaluationSpec, evaluate_run
from envs.evaluation import MODES, describe

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.evaluate_suite",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("suite", help=f"a suite in configs/suite ({', '.join(suite_names())}) or a YAML path")
    parser.add_argument("--dir", help="where the cells ran (default runs/suite/<suite>)")
    parser.add_argument("--tasks", nargs="+", metavar="GLOB")
    parser.add_argument("--agents", nargs="+", metavar="GLOB")
    # defaults: the suite's evaluate: entry, else EvaluationSpec's (20 greedy episodes, seed 100)
    parser.add_argument("--episodes", type=int)
    parser.add_argument("--seed", type=int, help="the evaluation envs' seed (not training's)")
    parser.add_argument("--mode", choices=list(MODES))
    args = parser.parse_args(argv)
    try:
        suite = load_suite(args.suite)
        suite_dir = Path(args.dir or ROOT / "runs" / "suite" / suite.name).resolve()
        cells = select(expand(suite, suite_dir, default_out(suite) / "cells"), args.tasks, args.agents)
        finished = [c for c in cells if cell_finished(c)]
        given = {k: v for k in ("episodes", "seed", "mode") if (v := getattr(args, k)) is not None}
        spec = EvaluationSpec(**{**vars(suite.evaluate or EvaluationSpec()), **given})
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = [c for c in finished if Path(c.run_dir).is_dir()]
    print(f"suite {suite.name}: {len(done)} of {len(cells)} cells finished in {suite_dir}", flush=True)
    if len(done) < len(finished):  # an archive keeps no checkpoint to evaluate
        print(f"  {len(finished) - len(done)} more are archived without their run dir (no checkpoint "
              "here): evaluate them where they ran", flush=True)  # fmt: skip
    for cell in done:
        for result in evaluate_run(cell.run_dir, spec):
            print(f"  {cell.task}/{cell.agent}/seed{cell.seed}: {describe(result)}", flush=True)
    print(f"report: python -m benchmarks.suite {args.suite} --dir {suite_dir} --report-only")
    return 0


if __name__ == "__main__":
    sys.exit(main())
