"""A suite's finished cells evaluated the way rl-zoo publishes: the final checkpoint's greedy policy.

python -m benchmarks.evaluate_suite novel --dir runs/suite/novel [--episodes 20] [--mode greedy]

A suite's report (report.compare) gives the training episodes' returns, under the sampling policy
that is still exploring. rl-zoo's ``benchmark.md`` evaluates one trained agent's deterministic
policy instead. This evaluates every finished cell's final checkpoint that way: our agents'
``checkpoint.pt`` with :func:`agents.evaluate.evaluate`, the peer's ``checkpoint.zip`` with
:func:`peers.evaluate.evaluate`, with the same episodes and evaluation seed, each env giving an
equal share of the episodes. It prints, per task and agent, the mean over seeds (worst seed) beside
the suite's ``references:``, and with ``--out`` writes the table as Markdown.

Each cell's result is kept in its run dir (``evaluation.json``, keyed by mode, episodes and seed),
so a rerun evaluates only the cells finished since. Unfinished cells show as pending.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from agents.checkpoint import checkpoint_name, write_atomically
from benchmarks.suite import ROOT, Cell, Suite, cell_finished, expand, load_suite, select, suite_names
from envs import make_vector_env
from envs.evaluation import MODES

__all__ = ["evaluate_cell", "main", "table"]

RESULTS_FILE = "evaluation.json"


def evaluate_cell(cell: Cell, episodes: int, greedy: bool, seed: int) -> dict[str, Any]:
    """The evaluation of a finished cell's final checkpoint (from ``evaluation.json`` when it
    holds this mode, episode count and seed; else run, and stored there)."""
    run_dir = Path(cell.run_dir)
    store = run_dir / RESULTS_FILE
    key = f"{'greedy' if greedy else 'sampled'}-{episodes}ep-seed{seed}"
    results = json.loads(store.read_text()) if store.is_file() else {}
    if key not in results:
        cfg = OmegaConf.load(run_dir / "config.yaml")
        if cfg.algo.name == "rppo":  # the peer's SB3 zip; needs the sb3 extra
            from peers.evaluate import evaluate
        else:
            from agents.evaluate import evaluate
        checkpoint = run_dir / checkpoint_name(cfg.algo.name)
        results[key] = evaluate(checkpoint, episodes=episodes, greedy=greedy, seed=seed)
        write_atomically(store, lambda f: f.write(json.dumps(results, indent=2).encode()))
    return results[key]


def env_label(cell: Cell) -> str:
    """The env's label as the report writes it (``gym:CartPoleNoVel-v1``), from the run's config."""
    cfg = OmegaConf.load(Path(cell.run_dir) / "config.yaml")
    env = make_vector_env(cfg.env, num_envs=1, seed=0)
    try:
        return env.env_name
    finally:
        env.close()


def table(suite: Suite, cells: Sequence[Cell], results: dict[Cell, dict[str, Any]], mode: str) -> str:
    """Markdown: a row per task, a column per agent ("mean (worst seed)" over the evaluated seeds,
    "k/n seeds" where some are pending), and the suite's references for the task's env."""
    agents = list(dict.fromkeys(c.agent for c in cells))
    tasks = list(dict.fromkeys(c.task for c in cells))
    labels = {}
    for task in tasks:
        done = [c for c in cells if c.task == task and c in results]
        labels[task] = env_label(done[0]) if done else None
    head = f"| task ({mode}) | " + " | ".join(agents) + " | published |"
    lines = [head, "|" + "---|" * (len(agents) + 2)]
    for task in tasks:
        row = [f"{task}" + (f" ({labels[task]})" if labels[task] else "")]
        for agent in agents:
            mine = [c for c in cells if c.task == task and c.agent == agent]
            values = [results[c]["return_mean"] for c in mine if c in results]
            if not mine:
                row.append("")
            elif not values:
                row.append("pending")
            else:
                seeds = "" if len(values) == len(mine) else f", {len(values)}/{len(mine)} seeds"
                row.append(f"{np.mean(values):.1f} ({min(values):.1f}){seeds}")
        refs = [r for r in suite.references if labels[task] is not None and r.env == labels[task]]
        row.append("; ".join(f"{r.value:g} ({r.agent})" for r in refs))
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


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
    parser.add_argument("--episodes", type=int, default=20)
    parser.add_argument("--seed", type=int, default=100, help="the evaluation envs' seed (not training's)")
    parser.add_argument("--mode", choices=list(MODES), default="greedy")
    parser.add_argument("--out", help="write the table(s) to this Markdown file")
    args = parser.parse_args(argv)
    try:
        suite = load_suite(args.suite)
        suite_dir = Path(args.dir or ROOT / "runs" / "suite" / suite.name).resolve()
        cells = select(expand(suite, suite_dir), args.tasks, args.agents)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    done = [c for c in cells if cell_finished(c)]
    print(f"suite {suite.name}: {len(done)} of {len(cells)} cells finished in {suite_dir}", flush=True)
    tables = []
    for greedy in MODES[args.mode]:
        mode = "greedy" if greedy else "sampled"
        results = {}
        for cell in done:
            results[cell] = evaluate_cell(cell, args.episodes, greedy, args.seed)
            print(
                f"  {cell.task}/{cell.agent}/seed{cell.seed}: {mode} {results[cell]['return_mean']:.2f}",
                flush=True,
            )
        tables.append(table(suite, cells, results, mode))
    text = (
        f"Final checkpoints of `{suite.name}` over {args.episodes} episodes (evaluation seed {args.seed}): "
        "return, mean over seeds (worst seed).\nCommand: `python -m benchmarks.evaluate_suite "
        f"{' '.join(argv if argv is not None else sys.argv[1:])}`\n\n" + "\n\n".join(tables) + "\n"
    )
    print(text)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
