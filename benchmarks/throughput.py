"""Training throughput on POPGym: the RTRL agent against sb3-contrib's RecurrentPPO.

What is measured: environment steps per second of training (acting and learning, end to end)
on popgym-RepeatPreviousEasy-v0 with 16 environments, on this machine, in the same run:

* ``RTRL``: train.py's learner, ``build(cfg, device)`` for ``env=popgym algo=rtrl`` (eLSTM, N =
  --hidden 128), num_envs 16, every other setting the config's default; timed over
  ``learner.update(learner.collect())`` iterations. ``TBPTT`` (eLSTM) and ``KFRTRL`` (its
  default core, RHN) are the same learner with another rule (--agents to choose).
* ``RecurrentPPO``: sb3-contrib, ``MlpLstmPolicy`` with lstm_hidden_size = --hidden, on
  ``make_vec_env("popgym-RepeatPreviousEasy-v0", n_envs=16)`` (DummyVecEnv), n_steps = --sb3-n-steps
  (128, SB3's default), every other setting SB3's default; timed over ``model.learn``.

Each agent is built and warmed up first (--warmup-steps; RecurrentPPO always runs whole updates
of n_steps × 16 = 2048 steps), then the agents take turns, each running ~--steps env steps per
turn (RecurrentPPO --sb3-steps: it is ~10× slower; the order reversed every round, --rounds
rounds); steps/s
is the median over rounds and ``×SB3`` the median of the per-round ratios to RecurrentPPO. All
run with the same torch.set_num_threads (--threads). Target (d): RTRL ×SB3 ≥ 3.

The two do different amounts of learning per env step (epochs, minibatch sizes, two LSTMs in
SB3's policy against one core here): the footer lists them. The table is the wall-clock cost of
each library's default recipe, not of equal work.

Usage:
    python -m benchmarks.throughput                    # ~3-4 min on 2 cores
    python -m benchmarks.throughput --quick            # ~1 min
    python -m benchmarks.throughput --agents rtrl sb3 --steps 40000 --rounds 3 --threads 1
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/rules.py

import argparse
import statistics
import time
import warnings
from collections.abc import Callable

import torch

from benchmarks.common import (
    Stopwatch,
    build_learner,
    compose_config,
    default_threads,
    format_table,
    header,
    paired_median_ratio,
    run_learner_steps,
)

GYM_ID = "popgym-RepeatPreviousEasy-v0"
OURS = ("rtrl", "tbptt", "kfrtrl")
BASELINE = "sb3"


class Agent:
    """Something that trains for ~n env steps and says how many it took."""

    def __init__(self, label: str, run: Callable[[int], int], describe: str) -> None:
        self.label, self.run, self.describe = label, run, describe


def make_ours(algo: str, args: argparse.Namespace) -> Agent:
    learner, cfg = build_learner(
        [
            "env=popgym",
            "env.id=RepeatPrevious",
            "env.difficulty=Easy",
            f"algo={algo}",
            f"core.hidden_size={args.hidden}",
            "num_envs=16",
            "device=cpu",
        ]
    )
    a = cfg.algo
    describe = (
        f"{algo.upper()}: {cfg.core.name} N={cfg.core.hidden_size}, encoder one-hot → MLP "
        f"{list(cfg.policy.mlp_hidden)}, rollout {a.rollout_len}×{cfg.num_envs} = "
        f"{a.rollout_len * cfg.num_envs} steps/update, {a['update']} {a.num_epochs} epochs × "
        f"{a.num_minibatches} minibatches of {cfg.num_envs // a.num_minibatches} envs × {a.rollout_len} "
        f"steps ({a.num_epochs * a.num_minibatches / (a.rollout_len * cfg.num_envs) * 1000:.0f} "
        f"grad steps per 1k env steps), lr {a.lr}"
    )
    return Agent(algo.upper(), lambda n: run_learner_steps(learner, n), describe)


def make_sb3(args: argparse.Namespace) -> Agent:
    import popgym  # noqa: F401  (registers the popgym ids)
    from sb3_contrib import RecurrentPPO
    from stable_baselines3.common.env_util import make_vec_env

    with warnings.catch_warnings():  # make_vec_env asks for render_mode="rgb_array"; popgym has none
        warnings.filterwarnings("ignore", message=".*render_mode.*")
        env = make_vec_env(GYM_ID, n_envs=16, seed=0)
    model = RecurrentPPO(
        "MlpLstmPolicy",
        env,
        n_steps=args.sb3_n_steps,
        policy_kwargs={"lstm_hidden_size": args.hidden},
        device="cpu",
        seed=0,
        verbose=0,
    )

    def run(n: int) -> int:
        start = model.num_timesteps
        model.learn(total_timesteps=n, reset_num_timesteps=False, progress_bar=False)
        return model.num_timesteps - start

    p = model.policy
    per_update = model.n_steps * env.num_envs
    grad_steps = model.n_epochs * (per_update // model.batch_size)
    describe = (
        f"SB3 RecurrentPPO: MlpLstmPolicy, LSTM {p.lstm_actor.hidden_size} (actor) + "
        f"{'LSTM ' + str(p.lstm_critic.hidden_size) + ' (critic)' if p.lstm_critic else 'no critic LSTM'}"
        f", net_arch {p.net_arch}, n_steps {model.n_steps}×{env.num_envs} = {per_update} steps/update, "
        f"{model.n_epochs} epochs × batch {model.batch_size} ({grad_steps / per_update * 1000:.0f} grad "
        f"steps per 1k env steps), lr {model.learning_rate}"
    )
    return Agent("RecurrentPPO", run, describe)


def timed(agent: Agent, n: int, threads: int) -> float:
    """Env steps per second of one turn."""
    torch.set_num_threads(threads)  # the same for everyone, whatever a library did before
    start = time.perf_counter()
    steps = agent.run(n)
    return steps / (time.perf_counter() - start)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument(
        "--agents", nargs="+", default=["rtrl", "sb3", "tbptt", "kfrtrl"], choices=[*OURS, BASELINE]
    )
    p.add_argument("--hidden", type=int, default=128, help="core / LSTM size")
    p.add_argument("--steps", type=int, default=16384, help="env steps per turn of our agents")
    p.add_argument(
        "--sb3-steps", type=int, default=8192, help="env steps per turn of RecurrentPPO (~150/s here)"
    )
    p.add_argument("--warmup-steps", type=int, default=2048, help="untimed env steps per agent first")
    p.add_argument("--rounds", type=int, default=2, help="turns per agent (A/B/A/B...)")
    p.add_argument("--sb3-n-steps", type=int, default=128, help="RecurrentPPO n_steps (per env)")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch.set_num_threads")
    p.add_argument("--quick", action="store_true", help="~1 minute: one round, 4096 (SB3: 2048) steps")
    args = p.parse_args(argv)
    if args.quick:
        args.steps, args.sb3_steps, args.rounds, args.warmup_steps = 4096, 2048, 1, 1024
    if BASELINE not in args.agents:
        args.agents.append(BASELINE)
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    clock = Stopwatch()
    torch.set_num_threads(args.threads)
    print(
        header(
            f"{GYM_ID}, 16 envs, hidden {args.hidden}, ~{args.steps} env steps per turn "
            f"(RecurrentPPO ~{args.sb3_steps}), {args.rounds} rounds (after ~{args.warmup_steps} "
            "warm-up steps)"
        )
    )
    agents = {name: make_sb3(args) if name == BASELINE else make_ours(name, args) for name in args.agents}
    for agent in agents.values():
        agent.run(args.warmup_steps)
    order = list(agents)
    rates: dict[str, list[float]] = {name: [] for name in agents}
    for rnd in range(args.rounds):
        for name in order if rnd % 2 == 0 else reversed(order):
            steps = args.sb3_steps if name == BASELINE else args.steps
            rates[name].append(timed(agents[name], steps, args.threads))
    rows = []
    for name, agent in agents.items():
        rows.append(
            [
                agent.label,
                f"{statistics.median(rates[name]):.0f}",
                " ".join(f"{r:.0f}" for r in rates[name]),
                f"{paired_median_ratio(rates[name], rates[BASELINE]):.2f}",
            ]
        )
    print(format_table(("agent", "steps/s", "per round", "×SB3"), rows))
    print(
        f"\nsteps/s: env steps per second of training (collect + update), median over rounds; "
        f"×SB3: median per-round ratio to RecurrentPPO. Target (d): RTRL ≥ 3×. "
        f"torch threads {args.threads} for all."
    )
    print("Configs (each library's defaults otherwise):")
    for agent in agents.values():
        print("  " + agent.describe)
    print(
        f"  train.py would run with torch_threads={compose_config([]).torch_threads} (configs/config.yaml); "
        f"here all use --threads {args.threads}."
    )
    print(f"\n{clock}")


if __name__ == "__main__":
    main()
