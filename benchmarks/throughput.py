"""Training speed on POPGym RepeatPreviousEasy: our learners against sb3-contrib's RecurrentPPO,
at matched update work, and the time each takes to reach a return.

**Throughput (default).** Env steps per second of training (acting and learning, end to end) on
``env=popgym`` (RepeatPreviousEasy) with 16 envs, every agent built from train.py's configs in
the same run, through the same env factory:

* ``RTRL`` / ``TBPTT`` / ``KFRTRL``: train.py's learner (``agents.training.build(cfg, device)``) for
  ``algo=rtrl`` (eLSTM), ``algo=tbptt`` (eLSTM) and ``algo=kfrtrl`` (RHN), timed over
  ``learner.update(learner.collect())``;
* ``RecurrentPPO``: ``algo=rppo`` (peers/recurrent_ppo.py: sb3-contrib's ``MlpLstmPolicy`` on our
  envs through the SB3 VecEnv adapter), timed over ``model.learn``.

For each rollout length M in --rollout-lens every agent does the same update work per env step:
PPO over rollouts of M steps × 16 envs, --epochs epochs of --minibatches minibatches of
16 / minibatches whole envs × M steps (RecurrentPPO: ``n_steps`` = M, ``n_epochs`` = epochs,
``batch_size`` = 16 × M / minibatches env steps), hidden size --hidden for the core and SB3's
LSTM. What still differs is the network: SB3's policy has a second LSTM for the critic (its
default, ``enable_critic_lstm``) and MLP heads after it; ours one core with linear heads after
an MLP encoder. The footer lists both.

Each agent is built and warmed up first (--warmup-steps), then the agents take turns, ~--steps env
steps each per turn, the order reversed every round (--rounds); steps/s is the median over
rounds, ``×RPPO`` the median of the per-round ratios to RecurrentPPO at the same M. All run
with the same torch.set_num_threads (--threads).

**Time to a return (--time-to R).** For each agent in turn, in one run on this machine, one
``jobs.train(cfg)`` job (our learner's loop, or the peer's for RecurrentPPO) on RepeatPreviousEasy
for --budget env steps at --seed, logged under --log-dir; then, from its event file
(``report.runs.load_run``), the env steps and wall-clock seconds (since the run's first event)
at the first logged ``rollout/ep_rew_mean`` ≥ R. Agents (``TIME_TO_AGENTS``): rtrl-elstm,
rtrl-rtu, kfrtrl-rhn, tbptt-lstm at the config defaults, and RecurrentPPO with the recipe of
issue 9's table (LSTM 128, n_steps 64, 4 epochs × 4 minibatches of 256). Random play scores about
-0.5 on this task.

Usage:
    python -m benchmarks.throughput                          # ~3-4 min on 2 cores
    python -m benchmarks.throughput --quick                  # ~1 min
    python -m benchmarks.throughput --agents rtrl rppo --rollout-lens 8 --steps 16384 --rounds 3
    python -m benchmarks.throughput --time-to 0.9            # 5 runs of 300k steps: 1-2 hours on 2 cores
    python -m benchmarks.throughput --time-to 0.9 --time-agents rtrl-rtu rppo-lstm --budget 100000
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/rules.py

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

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

ENV = ["env=popgym", "env.id=RepeatPrevious", "env.difficulty=Easy", "num_envs=16", "device=cpu"]
OURS = ("rtrl", "tbptt", "kfrtrl")
BASELINE = "rppo"
# --time-to: label -> train.py overrides (after ENV)
TIME_TO_AGENTS: dict[str, list[str]] = {
    "rtrl-elstm": ["algo=rtrl"],
    "rtrl-rtu": ["algo=rtrl", "core=rtu"],
    "kfrtrl-rhn": ["algo=kfrtrl"],
    "tbptt-lstm": ["algo=tbptt", "core=lstm"],
    "rppo-lstm": [
        "algo=rppo",
        "core.hidden_size=128",
        "algo.n_steps=64",
        "algo.n_epochs=4",
        "algo.batch_size=256",
    ],
}


@dataclass
class Agent:
    """Something that trains for ~n env steps and says how many it took."""

    label: str
    run: Callable[[int], int]
    describe: str


@dataclass(frozen=True)
class Work:
    """The update work every agent does at one rollout length."""

    rollout_len: int  # M, RecurrentPPO's n_steps
    epochs: int
    minibatches: int  # per epoch
    hidden: int
    num_envs: int = 16

    @property
    def batch_steps(self) -> int:
        """Env steps per minibatch (RecurrentPPO's batch_size)."""
        return self.num_envs // self.minibatches * self.rollout_len

    def grad_steps_per_1k(self) -> float:
        return self.epochs * self.minibatches / (self.rollout_len * self.num_envs) * 1000


def make_ours(algo: str, work: Work) -> Agent:
    learner, cfg = build_learner(
        [
            *ENV,
            f"algo={algo}",
            f"core.hidden_size={work.hidden}",
            f"algo.rollout_len={work.rollout_len}",
            "algo.update=ppo",
            f"algo.num_epochs={work.epochs}",
            f"algo.num_minibatches={work.minibatches}",
        ]
    )
    a = cfg.algo
    describe = (
        f"{algo.upper()}: {cfg.core.name} N={cfg.core.hidden_size}, encoder one-hot → MLP "
        f"{list(cfg.policy.mlp_hidden)} (+ previous action and reward), linear heads; M={a.rollout_len}, "
        f"{a.num_epochs} epochs × {a.num_minibatches} minibatches of {cfg.num_envs // a.num_minibatches} "
        f"envs × {a.rollout_len} steps, lr {a.lr}"
    )
    return Agent(algo.upper(), lambda n: run_learner_steps(learner, n), describe)


def make_rppo(work: Work) -> Agent:
    from peers.recurrent_ppo import make_model

    cfg = compose_config(
        [
            *ENV,
            "algo=rppo",
            f"core.hidden_size={work.hidden}",
            f"algo.n_steps={work.rollout_len}",
            f"algo.n_epochs={work.epochs}",
            f"algo.batch_size={work.batch_steps}",
        ]
    )
    torch.manual_seed(cfg.seed)
    model = make_model(cfg, torch.device("cpu"))

    def run(n: int) -> int:
        start = model.num_timesteps
        model.learn(total_timesteps=n, reset_num_timesteps=False, log_interval=None)
        return model.num_timesteps - start

    p = model.policy
    critic = f"LSTM {p.lstm_critic.hidden_size} (critic)" if p.lstm_critic else "no critic LSTM"
    describe = (
        f"RecurrentPPO: {type(p).__name__}, LSTM {p.lstm_actor.hidden_size} (actor) + {critic}, "
        f"net_arch {p.net_arch}; n_steps={model.n_steps}, {model.n_epochs} epochs × batch "
        f"{model.batch_size} steps, lr {model.learning_rate}"
    )
    return Agent("RecurrentPPO", run, describe)


def timed(agent: Agent, n: int, threads: int) -> float:
    """Env steps per second of one turn."""
    torch.set_num_threads(threads)  # the same for everyone, whatever a library did before
    start = time.perf_counter()
    steps = agent.run(n)
    return steps / (time.perf_counter() - start)


def throughput(args: argparse.Namespace) -> None:
    """The matched-work table: one block of rows per rollout length."""
    rows: list[list[str]] = []
    footer: list[str] = []
    for m in args.rollout_lens:
        work = Work(m, args.epochs, args.minibatches, args.hidden)
        agents = {
            name: make_rppo(work) if name == BASELINE else make_ours(name, work) for name in args.agents
        }
        for agent in agents.values():
            agent.run(args.warmup_steps)
        order = list(agents)
        rates: dict[str, list[float]] = {name: [] for name in agents}
        for rnd in range(args.rounds):
            for name in order if rnd % 2 == 0 else reversed(order):
                rates[name].append(timed(agents[name], args.steps, args.threads))
        for name, agent in agents.items():
            rows.append(
                [
                    agent.label,
                    str(m),
                    f"{work.epochs}×{work.minibatches}×{work.batch_steps}",
                    f"{work.grad_steps_per_1k():.0f}",
                    f"{statistics.median(rates[name]):.0f}",
                    " ".join(f"{r:.0f}" for r in rates[name]),
                    f"{paired_median_ratio(rates[name], rates[BASELINE]):.2f}",
                ]
            )
        rows.append([])
        footer += [f"  M={m}: {agent.describe}" for agent in agents.values()]
    head = ("agent", "M", "epochs×mb×steps", "grad/1k", "steps/s", "per round", "×RPPO")
    print(format_table(head, rows[:-1]))
    print(
        f"\nsteps/s: env steps per second of training (collect + update), median over rounds; ×RPPO: "
        f"median per-round ratio to RecurrentPPO at the same M. epochs×mb×steps: PPO epochs × "
        f"minibatches per epoch × env steps per minibatch; grad/1k: optimizer steps per 1000 env "
        f"steps (equal within a block). torch threads {args.threads} for all (train.py would use "
        f"torch_threads={compose_config([]).torch_threads})."
    )
    print("Agents:")
    print("\n".join(footer))


def time_to(args: argparse.Namespace) -> None:
    """For each agent in turn: one jobs.train job, then steps and seconds to the threshold."""
    from jobs import train
    from report.runs import load_run

    rows = []
    for label in args.time_agents:
        cfg = compose_config(
            [
                *ENV,
                *TIME_TO_AGENTS[label],
                f"seed={args.seed}",
                f"total_steps={args.budget}",
                f"log_dir={args.log_dir}",
                f"torch_threads={args.threads}",
                "progress=false",
            ]
        )
        summary = train(cfg)
        run = load_run(summary["run_dir"])
        reached = None if run is None else run.first_reach(args.time_to)
        rows.append(
            [
                label,
                "never" if reached is None else str(reached[0]),
                "-" if reached is None else f"{reached[1]:.0f}",
                f"{summary['ep_rew_mean']:.3f}",
                "-" if run is None or run.steps_per_second is None else f"{run.steps_per_second:.0f}",
                summary["run_dir"],
            ]
        )
    head = ("agent", f"steps to ≥{args.time_to}", "seconds", "final", "steps/s", "run")
    print(format_table(head, rows, left={0, 5}))
    print(
        f"\nOne train.py job per agent, one after another, seed {args.seed}, budget {args.budget} "
        f"env steps, torch threads {args.threads}. steps / seconds: at the first logged "
        f"rollout/ep_rew_mean (mean of the last 100 episodes) ≥ {args.time_to}, seconds since "
        "the run's first event; final: that mean at the end; steps/s: the last time/fps. "
        f"A report with curves: python -m report.compare {args.log_dir} --out OUT --threshold {args.time_to}"
    )


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", nargs="+", default=["rtrl", "tbptt", BASELINE], choices=[*OURS, BASELINE])
    p.add_argument("--rollout-lens", nargs="+", type=int, default=[8, 64], help="M (RecurrentPPO n_steps)")
    p.add_argument("--epochs", type=int, default=4, help="PPO epochs per update, for every agent")
    p.add_argument("--minibatches", type=int, default=4, help="minibatches per epoch, for every agent")
    p.add_argument("--hidden", type=int, default=128, help="core / LSTM size")
    p.add_argument("--steps", type=int, default=8192, help="env steps per turn")
    p.add_argument("--warmup-steps", type=int, default=2048, help="untimed env steps per agent first")
    p.add_argument("--rounds", type=int, default=2, help="turns per agent (A/B/A/B...)")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch.set_num_threads")
    p.add_argument("--quick", action="store_true", help="~1 minute: M = 8 only, one round of 4096 steps")
    p.add_argument("--time-to", type=float, default=None, help="instead: steps and seconds to this return")
    p.add_argument("--time-agents", nargs="+", default=list(TIME_TO_AGENTS), choices=list(TIME_TO_AGENTS))
    p.add_argument("--budget", type=int, default=300_000, help="--time-to: env steps per run")
    p.add_argument("--seed", type=int, default=0, help="--time-to: seed of every run")
    p.add_argument("--log-dir", default="runs/throughput", help="--time-to: where the runs go")
    args = p.parse_args(argv)
    if args.quick:
        args.rollout_lens, args.steps, args.rounds, args.warmup_steps = [8], 4096, 1, 1024
    if BASELINE not in args.agents:
        args.agents.append(BASELINE)
    if 16 % args.minibatches:
        p.error(f"--minibatches must divide the 16 envs, got {args.minibatches}")
    return args


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(None if argv is None else list(argv))
    clock = Stopwatch()
    torch.set_num_threads(args.threads)
    if args.time_to is not None:
        print(header(f"popgym RepeatPreviousEasy, 16 envs, time to a mean return ≥ {args.time_to}"))
        time_to(args)
    else:
        print(
            header(
                f"popgym RepeatPreviousEasy, 16 envs, hidden {args.hidden}, M {args.rollout_lens}, "
                f"~{args.steps} env steps per turn, {args.rounds} rounds (after ~{args.warmup_steps} "
                "warm-up steps)"
            )
        )
        throughput(args)
    print(f"\n{clock}")


if __name__ == "__main__":
    main()
