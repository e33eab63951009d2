"""Atari end to end: the RTRL agent's training rate against the bare vectorised env's step rate.

What is measured, on this machine's CPU (no GPU in this session), with 16 environments:

* ``raw env``: ale-py's C++ ``AtariVectorEnv`` as the learner gets it, ``make_vector_env({"name":
  "atari", "game": --game, "frame_stack": 4}, 16, 0)`` (84×84 greyscale, frameskip 4, with the
  episode-statistics, reward-clip and naming wrappers), stepped with random actions
  (``action_space.sample()``) and nothing else: the ceiling for any agent here.
* ``RTRL agent``: train.py's learner, ``build(cfg, device)`` for ``env=atari algo=rtrl`` (Nature
  CNN → eLSTM of N = --hidden 256), num_envs 16, every other setting the config's default
  (rollout_len, PPO epochs and minibatches) except fused Adam (``algo.fused_optimizer=true``),
  timed over ``learner.update(learner.collect())``.
  ``collect`` is the share of its time spent acting (CNN + core forward per step, env steps),
  the rest is the update (re-running the CNN and core over the rollout with gradients, per
  PPO minibatch and epoch).
* ``agent/raw``: the agent's steps/s over the raw env's, the median of per-round ratios (the two
  alternate, --rounds rounds, after a warm-up). It says how much of the env's speed training keeps.

Threads: torch.set_num_threads(--threads, default all cores); the ALE's own thread pool is its
default (one thread per core). Both share the 2 cores with each other (in the agent) and with
whatever else runs on the machine: the header prints the load average.

Usage:
    python -m benchmarks.atari                        # ~3 min on 2 cores
    python -m benchmarks.atari --quick                # ~1 min
    python -m benchmarks.atari --game pong --hidden 128 --rounds 5
    python -m benchmarks.atari --device cuda          # the agent on the GPU (the env stays on the CPU)
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/rules.py

import argparse
import statistics
import time

import torch

from benchmarks.common import (
    Stopwatch,
    build_learner,
    default_threads,
    format_table,
    header,
    paired_median_ratio,
)
from envs import make_vector_env

NUM_ENVS = 16


def raw_rate(envs, steps: int) -> float:
    """Env steps per second of random-action stepping, ~``steps`` env steps."""
    iterations = max(1, steps // envs.num_envs)
    start = time.perf_counter()
    for _ in range(iterations):
        envs.step(envs.action_space.sample())
    return iterations * envs.num_envs / (time.perf_counter() - start)


def agent_rate(learner, steps: int) -> tuple[float, float]:
    """Env steps per second of training over ~``steps`` env steps, and the share spent collecting."""
    t_collect = t_update = 0.0
    start_step = learner.global_step
    while learner.global_step - start_step < steps:
        t0 = time.perf_counter()
        ro = learner.collect()
        t1 = time.perf_counter()
        learner.update(ro)
        t2 = time.perf_counter()
        t_collect, t_update = t_collect + t1 - t0, t_update + t2 - t1
    total = t_collect + t_update
    return (learner.global_step - start_step) / total, t_collect / total


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--game", default="breakout", help="snake_case ROM name")
    p.add_argument("--hidden", type=int, default=256, help="eLSTM size N")
    p.add_argument("--raw-steps", type=int, default=8192, help="env steps per raw-env turn")
    p.add_argument("--agent-steps", type=int, default=2048, help="env steps per agent turn")
    p.add_argument("--rounds", type=int, default=3, help="turns of each (alternating)")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch.set_num_threads")
    p.add_argument("--device", default="cpu", help="where the agent runs: cpu, cuda, cuda:1, ...")
    p.add_argument("--quick", action="store_true", help="~1 minute: one round, fewer steps")
    args = p.parse_args(argv)
    if args.quick:
        args.raw_steps, args.agent_steps, args.rounds = 4096, 1024, 1
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    clock = Stopwatch()
    torch.set_num_threads(args.threads)
    env_cfg = {"name": "atari", "game": args.game, "frame_stack": 4}
    raw = make_vector_env(env_cfg, NUM_ENVS, 0)
    raw.reset()
    learner, cfg = build_learner(
        [
            "env=atari",
            f"env.game={args.game}",
            "env.frame_stack=4",
            "algo=rtrl",
            f"core.hidden_size={args.hidden}",
            f"num_envs={NUM_ENVS}",
            "algo.fused_optimizer=true",  # fused Adam, as recommended for CNN agents
            f"device={args.device}",
        ],
        device=args.device,
    )
    a = cfg.algo
    print(
        header(
            f"atari:{args.game}, {NUM_ENVS} envs, frame_stack 4, RTRL eLSTM N={args.hidden}; "
            f"raw ~{args.raw_steps} / agent ~{args.agent_steps} env steps per turn, {args.rounds} rounds",
            args.device,
        )
    )
    # warm-up: one turn each, untimed (first rollouts allocate, the ALE fills its pipelines)
    raw_rate(raw, NUM_ENVS * 32)
    agent_rate(learner, 1)
    raws, agents, shares = [], [], []
    for rnd in range(args.rounds):
        for which in ("raw", "agent") if rnd % 2 == 0 else ("agent", "raw"):
            if which == "raw":
                raws.append(raw_rate(raw, args.raw_steps))
            else:
                rate, share = agent_rate(learner, args.agent_steps)
                agents.append(rate)
                shares.append(share)
    raw.close()
    learner.envs.close()
    share = f"{100 * statistics.median(shares):.0f}%"
    rows = [
        [
            "raw env (random actions)",
            f"{statistics.median(raws):.0f}",
            " ".join(f"{r:.0f}" for r in raws),
            "",
        ],
        [
            "RTRL agent (collect+update)",
            f"{statistics.median(agents):.0f}",
            " ".join(f"{r:.0f}" for r in agents),
            share,
        ],
    ]
    print(format_table(("", "steps/s", "per round", "collect"), rows))
    print(
        f"\nagent/raw: {paired_median_ratio(agents, raws):.3f} (median per-round ratio of steps/s)"
        f"\nagent: Nature CNN → eLSTM N={args.hidden}, rollout {a.rollout_len}×{NUM_ENVS}, {a['update']} "
        f"{a.num_epochs} epochs × {a.num_minibatches} minibatches, torch threads {args.threads}; "
        "collect: the agent's share of time spent acting."
        f"\nagent device: {args.device}"
    )
    print(f"\n{clock}")


if __name__ == "__main__":
    main()
