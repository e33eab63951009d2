"""The learner's cost per environment step: exact-RTRL eLSTM against the same learner with TBPTT.

What is measured: one training iteration of agents/learner.py's Learner,
``learner.update(learner.collect())``, divided by the env steps it covers (rollout_len M ×
num_envs B), for the same agent trained two ways, by RTRL (exact, element-wise, carries the
credit from before the rollout) and by TBPTT (drops it), at the same rollout length M.

* The env is benchmarks.common.SyntheticVectorEnv: random float observations of dim --obs-dim
  (256) from a small pool, Discrete(4) actions, NEXT_STEP autoreset, episodes that never end
  (--episode-len to make them end). Its step costs ~nothing, so the table is the learner's cost.
* The agent: agents/policy.py's ActorCritic, MLP encoder ``mlp_hidden=[--hidden]`` (256), eLSTM
  core of N = --hidden (256) units; its input is D = 256 + 4 (prev action) + 2 (prev reward,
  start flag) = 262. B = --batch (16). M ∈ --lens (8 32 128).
* Update modes: ``a2c`` (one gradient step per rollout) and ``ppo`` (--epochs 4 × --minibatches 4,
  whole environments per minibatch).
* Columns: ``collect``, ``update``: ms per env step of each half; ``total``: their sum;
  ``×TBPTT``: RTRL's total over TBPTT's. The two learners run interleaved (the order flips every
  repeat) after a warm-up; each repeat gives one paired ratio and the table shows the median
  ratio and median times. The machine is shared: read the ratios, not the ms. Target (a): ×TBPTT
  ≤ 1.2. Collect does not involve the rule at all (no gradients), so any difference lies in the
  update: the carried-credit contraction in the backward, the trace advance, and the trace
  copies the learner makes per minibatch.

``--profile`` instead profiles one config (M = --profile-len 32, a2c) with torch.profiler and
prints the top --profile-rows (15) ops by self CPU time for RTRL and for TBPTT (``collect`` and
``update`` appear as record_function ranges: their total CPU is that half's share).

Usage:
    python -m benchmarks.learner                       # the default table (~3 min on 2 cores)
    python -m benchmarks.learner --quick               # ~1 min
    python -m benchmarks.learner --lens 32 --updates a2c --repeats 9
    python -m benchmarks.learner --profile
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/rules.py

import argparse
import statistics
import time

import torch
import torch.profiler

from agents.learner import Learner
from benchmarks.common import (
    Stopwatch,
    default_threads,
    format_table,
    header,
    paired_median_ratio,
    synthetic_learner,
)

RULES = ("rtrl", "tbptt")
BASELINE = "tbptt"


def make_learner(rule: str, m: int, update: str, args: argparse.Namespace, seed: int = 0) -> Learner:
    """An eLSTM learner on the synthetic env; the same weights for every rule (same seed)."""
    return synthetic_learner(
        rule,
        m,
        args.batch,
        args.hidden,
        args.obs_dim,
        args.episode_len or None,
        seed,
        update=update,
        num_epochs=args.epochs,
        num_minibatches=args.minibatches,
    )


def iterate(learner: Learner, iterations: int) -> tuple[float, float]:
    """Seconds spent in collect and in update over ``iterations`` training iterations."""
    t_collect = t_update = 0.0
    for _ in range(iterations):
        t0 = time.perf_counter()
        ro = learner.collect()
        t1 = time.perf_counter()
        learner.update(ro)
        t2 = time.perf_counter()
        t_collect += t1 - t0
        t_update += t2 - t1
    return t_collect, t_update


def measure(m: int, update: str, args: argparse.Namespace) -> list[list[str]]:
    """Rows of the table for one (M, update mode)."""
    learners = {rule: make_learner(rule, m, update, args) for rule in RULES}
    steps_per_iter = m * args.batch
    iterations = max(1, round(args.steps_per_sample / steps_per_iter))
    collect: dict[str, list[float]] = {r: [] for r in RULES}
    upd: dict[str, list[float]] = {r: [] for r in RULES}
    for rep in range(args.warmup + args.repeats):
        for rule in RULES if rep % 2 == 0 else reversed(RULES):
            tc, tu = iterate(learners[rule], iterations)
            if rep >= args.warmup:
                steps = iterations * steps_per_iter
                collect[rule].append(tc / steps)
                upd[rule].append(tu / steps)
    total = {r: [c + u for c, u in zip(collect[r], upd[r], strict=True)] for r in RULES}
    rows = []
    for rule in RULES:
        ratio = paired_median_ratio(total[rule], total[BASELINE])
        rows.append(
            [
                str(m),
                update,
                rule.upper(),
                f"{1e3 * statistics.median(collect[rule]):.3f}",
                f"{1e3 * statistics.median(upd[rule]):.3f}",
                f"{1e3 * statistics.median(total[rule]):.3f}",
                f"{ratio:.2f}",
                str(iterations * steps_per_iter),
            ]
        )
    return rows


def profile(args: argparse.Namespace) -> None:
    """Top ops by self CPU time of RTRL and TBPTT at M = --profile-len, a2c, and the ops that
    make up RTRL's extra time (self CPU of RTRL minus TBPTT, per iteration)."""
    m = args.profile_len
    iterations = max(1, round(args.steps_per_sample / (m * args.batch)))
    self_us: dict[str, dict[str, float]] = {}
    for rule in RULES:
        learner = make_learner(rule, m, "a2c", args)
        iterate(learner, iterations)  # warm-up
        with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
            for _ in range(iterations):
                with torch.profiler.record_function("collect"):
                    ro = learner.collect()
                with torch.profiler.record_function("update"):
                    learner.update(ro)
        steps = iterations * m * args.batch
        print(
            f"\n=== {rule.upper()} eLSTM N={args.hidden} B={args.batch} M={m} a2c: "
            f"{iterations} iterations, {steps} env steps ==="
        )
        events = prof.key_averages()
        print(events.table(sort_by="self_cpu_time_total", row_limit=args.profile_rows))
        self_us[rule] = {e.key: e.self_cpu_time_total / iterations for e in events}
    extra = {k: v - self_us[BASELINE].get(k, 0.0) for k, v in self_us[RULES[0]].items()}
    print(f"\n=== {RULES[0].upper()} − {BASELINE.upper()}: self CPU µs per iteration ===")
    for key, us in sorted(extra.items(), key=lambda kv: -kv[1])[: args.profile_rows]:
        print(f"{us:>10.0f}  {key}")
    print(f"{sum(extra.values()):>10.0f}  total")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hidden", type=int, default=256, help="N, and the encoder MLP's width")
    p.add_argument("--obs-dim", type=int, default=256, help="observation size of the synthetic env")
    p.add_argument("--batch", type=int, default=16, help="B, environments")
    p.add_argument("--lens", type=int, nargs="+", default=[8, 32, 128], help="rollout lengths M")
    p.add_argument("--updates", nargs="+", default=["a2c", "ppo"], choices=["a2c", "ppo"])
    p.add_argument("--epochs", type=int, default=4, help="PPO epochs")
    p.add_argument("--minibatches", type=int, default=4, help="PPO minibatches (of whole envs)")
    p.add_argument("--episode-len", type=int, default=0, help="0: episodes never end")
    p.add_argument("--steps-per-sample", type=int, default=1024, help="env steps per timed sample")
    p.add_argument("--repeats", type=int, default=7, help="timed samples per learner (median taken)")
    p.add_argument("--warmup", type=int, default=1, help="untimed samples per learner first")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch.set_num_threads")
    p.add_argument("--profile", action="store_true", help="profile one config instead of the table")
    p.add_argument("--profile-len", type=int, default=32, help="M of the profiled config")
    p.add_argument("--profile-rows", type=int, default=15, help="ops shown per profile")
    p.add_argument("--quick", action="store_true", help="~1 minute: fewer and shorter samples")
    args = p.parse_args(argv)
    if args.quick:
        args.steps_per_sample, args.repeats = 512, 3
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    clock = Stopwatch()
    torch.set_num_threads(args.threads)
    print(
        header(
            f"eLSTM N={args.hidden}, obs {args.obs_dim} → MLP [{args.hidden}], B={args.batch}, "
            f"~{args.steps_per_sample} env steps per sample, median of {args.repeats} "
            f"(after {args.warmup} warm-up)"
        )
    )
    if args.profile:
        profile(args)
    else:
        rows: list[list[str]] = []
        for update in args.updates:
            for m in args.lens:
                if rows:
                    rows.append([])
                rows += measure(m, update, args)
        cols = ("M", "update", "rule", "collect", "update", "total", "×TBPTT", "steps/sample")
        print(format_table(cols, rows, left={1, 2}))
        print(
            f"\ncollect, update, total: ms per env step (per rollout_len·num_envs); ×TBPTT: median "
            f"paired ratio of totals, target ≤ 1.2.\nppo: {args.epochs} epochs × {args.minibatches} "
            "minibatches of whole envs; a2c: one gradient step per rollout."
        )
    print(f"\n{clock}")


if __name__ == "__main__":
    main()
