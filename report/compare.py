"""Compare finished runs: ``python -m report.compare DIR... --out OUT [--threshold X]``.

Reads run directories (TensorBoard event files, usually with the run's ``config.yaml``), groups
them by env and agent, and writes ``OUT/summary.md``, ``OUT/summary.json``, ``OUT/summary.csv``,
one PNG of learning curves per env and one PNG of the aggregate across envs.

- **Final return** of a run: the mean of the tag (``rollout/ep_rew_mean``) over the last 10% of its
  logged points (at least one point). Per env and agent: the mean over seeds with a 95% stratified
  bootstrap CI (rliable), and the worst seed beside it.
- **Time to threshold**: the env steps and the wall-clock seconds (event ``wall_time`` minus the
  run's first event, less the pauses of a run stopped and resumed: report/records.py
  ``training_seconds``) at the first logged point ≥ the threshold, averaged over the seeds that reached
  it; "k/n" says how many did. One threshold for every env (``--threshold 0.9``), or per env label
  glob (``--threshold 'popgym:*=0.9' --threshold 'gym:Hopper*=1000'``; the first match wins, a bare
  number covers the rest, and an env nothing covers gets no threshold columns): returns differ in
  scale between envs.
- **Steps/s**: the last ``time/fps`` of a run, else its last step over its wall-clock time.
- **Aggregate**: the interquartile mean (IQM, Agarwal et al. 2021) of min-max normalised final
  returns with a stratified bootstrap CI. Bounds per env: ``[low, high]`` from a bounds mapping
  (e.g. random-play and best returns), else the min and max of the final returns of all runs of
  that env (so the aggregate ranks agents relative to each other, not against a reference).
  rliable's bootstrap needs a full runs × envs matrix: the aggregate covers one set of envs and the
  agents that ran all of them, with as many seeds per env as the agent's smallest count. The set
  is ``--aggregate-envs GLOB...``, else the env set that the most (agent, env) pairs fill: all envs
  when every agent ran every env; an agent run on a few envs only is left out, with a note.
- **References** (``--references FILE``, report/references.py): published results (a paper's or a
  library's number, with its budget and source), printed under their env as published, never
  entering the aggregate, the bounds or the targets.
- **A suite part-way** (``--cells cells.json``, report/cells.py, written by benchmarks.suite): only
  the finished cells' runs are compared (from their run dirs, or else their archives:
  report/archive.py); running and pending cells are counted per env and agent,
  and an env or agent with none finished shows as pending.
- **Targets** (``--targets FILE``, report/targets.py): declared claims, such as "the best RTRL agent
  ends at least as high as RecurrentPPO on every POPGym Easy env", each reported as met, not met
  or pending in a "Targets" section at the top of summary.md.

Env labels come from ``config.yaml`` in the env adapters' own format (``popgym:RepeatPreviousEasy``,
``recall:delay12-cues4``, ``atari:pong``, ``procgen:maze-memory``, ``gym:CartPole-v1``), so finished
and crashed runs group together; an env family this module does not know uses the label the run
wrote (the hparams ``env``). ``policy.prev_action: false`` adds `` (no prev action)``. Agents are
``<algo>-<core>`` from the config. Without ``config.yaml`` the layout ``<env>/<agent>/seed<N>-*``
of the directory names is the fallback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from report.archive import load_archived_run
from report.cells import count_cells, done_sources, load_cells
from report.records import DEFAULT_TAG
from report.references import load_references
from report.runs import load_run, load_runs
from report.stats import summarize
from report.targets import load_targets
from report.thresholds import load_bounds, parse_threshold_args
from report.write import write_report

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m report.compare DIR... --out OUT``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m report.compare",
        description="Compare finished runs: summary.md/json/csv and PNGs of curves and the aggregate.",
    )
    parser.add_argument("dirs", nargs="*", help="run directories, or directories above them (or --cells)")
    parser.add_argument("--out", required=True, help="output directory")
    parser.add_argument(
        "--threshold",
        action="append",
        default=[],
        metavar="[GLOB=]X",
        help="return for steps/seconds-to-threshold: X for every env, or GLOB=X per env label (repeatable)",
    )
    parser.add_argument("--tag", default=DEFAULT_TAG, help=f"scalar tag to compare (default {DEFAULT_TAG})")
    parser.add_argument(
        "--bounds", help="YAML of env label -> [low, high] for the normalisation (or a suite config's bounds)"
    )
    parser.add_argument(
        "--agent-key",
        action="append",
        default=[],
        dest="agent_keys",
        help="dotted config key that splits agents further, e.g. algo.rollout_len (repeatable)",
    )
    parser.add_argument("--targets", help="YAML of targets to check (a list, or a suite config's targets)")
    parser.add_argument(
        "--references", help="YAML of published results to print beside the rows (a list, or a suite config)"
    )
    parser.add_argument(
        "--cells",
        help="a suite's cells.json: compare its done cells only, and count the rest as running or pending",
    )
    parser.add_argument(
        "--aggregate-envs",
        nargs="+",
        metavar="GLOB",
        help="env label globs the aggregate covers (default: the env set the most agents × envs fill)",
    )
    parser.add_argument("--reps", type=int, default=2000, help="bootstrap replications (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    args = parser.parse_args(argv)
    if not args.dirs and not args.cells:
        parser.error("give run directories, or a suite's --cells")
    try:
        cells = load_cells(args.cells) if args.cells else []
        if cells:  # a suite: its finished cells (and any dirs given besides), the rest counted
            runs = load_runs(args.dirs, args.tag, args.agent_keys) if args.dirs else []
            run_dirs, archives, missing = done_sources(cells)
            runs += [r for path in run_dirs if (r := load_run(path, args.tag, args.agent_keys)) is not None]
            runs += [load_archived_run(path, args.tag, args.agent_keys) for path in archives]
            if missing:
                print(f"warning: {len(missing)} done cells have neither a run dir nor an archive here, "
                      f"and are left out: {', '.join(missing)}", file=sys.stderr)  # fmt: skip
        else:
            runs = load_runs(args.dirs, args.tag, args.agent_keys)
        bounds = load_bounds(args.bounds) if args.bounds else None
        targets = load_targets(args.targets) if args.targets else []
        references = load_references(args.references) if args.references else []
        summary = summarize(
            runs,
            parse_threshold_args(args.threshold),
            bounds,
            args.reps,
            args.seed,
            aggregate_envs=args.aggregate_envs,
            references=references,
            cells=count_cells(cells),
        )
        command = "python -m report.compare " + " ".join(sys.argv[1:] if argv is None else argv)
        paths = write_report(summary, runs, args.out, command, seed=args.seed, targets=targets)
    except (FileNotFoundError, ValueError, ImportError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(runs)} runs, {len(summary.rows)} env × agent groups; wrote {', '.join(map(str, paths))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
