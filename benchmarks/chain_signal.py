"""How much of MemoryChain's context an untrained recurrent core still holds when it must answer.

MemoryChain (envs/memory_chain.py) shows one context bit at its start and asks for it L steps
later. A learner without credit through the state (stream AC with TBPTT span 1) can only learn the
answer if the core's state at the query still differs between the two contexts at the core's
*initial* weights: its readout then learns from that difference, and credit through the state
(RTRL) adds nothing. This measures that difference for the streaming agent as ``algo=stream``
builds it (``core=rtu`` by default), before any learning.

For each length L and seed: one batch of episodes with random contexts and the actions held at 0
(they do not matter before the last step; ``--actions random``: uniform random actions, fed back
to the core as its previous action, as a learning policy's are), their observations normalised
by their own mean and std (what the learner's running statistics converge to), and the core's
output h when the last action is chosen. Printed per row: ``|h|``, the mean norm of that output;
``|dh|``, the norm of the difference of the mean outputs of the two contexts; their ratio;
``units``, the outputs whose difference exceeds 1% of the largest |h| entry; and ``readout``,
the held-out accuracy of a linear classifier of the context from h (L2-regularised logistic
regression fitted on 3/4 of the episodes, scored on the rest): 1.0 means a linear policy head
could answer from the untrained core's state alone; ``answer``, how often the policy head's most
likely last action is the right one (0.5 is chance).

``--checkpoint <run>/checkpoint.pt`` measures a trained ``algo=stream`` run instead: its policy
network, at its run's memory length, with observations normalised by its saved running statistics.
A trained core whose readout is 1.0 and whose answer is at chance holds the bit, and the policy
head has not learned to use it.

Usage:
    python -m benchmarks.chain_signal                          # L 4 16 64 128, seeds 0-2, RTU
    python -m benchmarks.chain_signal --lengths 64 --set core=elstm
    python -m benchmarks.chain_signal --actions random
    python -m benchmarks.chain_signal --checkpoint <run>/checkpoint.pt --actions random
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from agents.checkpoint import load_checkpoint
from agents.policy import greedy_action
from agents.stream import StreamLearner
from benchmarks.common import CONFIGS
from envs.memory_chain import MemoryChainVectorEnv

EPISODES = 512  # 384 to fit the readout, 128 to score it


def chain_signal(
    length: int,
    seed: int,
    overrides: Sequence[str] = (),
    actions: str = "zero",
    checkpoint: str | Path | None = None,
) -> dict[str, float]:
    """The row for one length and seed (see the module docstring); with ``checkpoint``, for that
    run's policy network at its own length (``length`` and ``overrides`` are then not used)."""
    if actions not in ("zero", "random"):
        raise ValueError(f"actions must be zero or random, got {actions!r}")
    if checkpoint is None:
        over = ["algo=stream", "env=memory_chain", f"env.memory_length={length}", f"seed={seed}", *overrides]
        with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
            cfg = compose("config", overrides=over)
    else:
        cfg = OmegaConf.load(Path(checkpoint).parent / "config.yaml")
        if cfg.algo.name != "stream" or cfg.env.name != "memory_chain":
            raise ValueError(f"{checkpoint}: not an algo=stream run on env=memory_chain")
        length = int(cfg.env.memory_length)
    env = MemoryChainVectorEnv(EPISODES, memory_length=length)
    torch.manual_seed(seed)
    learner = StreamLearner.from_config(cfg, env, torch.device("cpu"))
    agent = learner.agent  # the policy network
    # the L + 1 observations of each episode, the last one seen before the answer
    obs, _ = env.reset(seed=seed)
    context = obs[:, 2].copy()  # 2c - 1, shown at the first step
    rng = np.random.default_rng(seed)
    steps, taken = [obs], [np.zeros(EPISODES, dtype=np.int64)]  # no previous action at the start
    for _ in range(length):
        taken.append(rng.integers(2, size=EPISODES) if actions == "random" else taken[0])
        obs = env.step(taken[-1])[0]
        steps.append(obs)
    xs = torch.as_tensor(np.stack(steps))  # (L + 1, B, D)
    if checkpoint is None:  # the statistics the learner's running ones converge to
        flat = xs.reshape(-1, xs.shape[-1])
        xs = (xs - flat.mean(0)) / torch.sqrt(flat.var(0) + 1e-8)
    else:  # what the trained network saw: its saved statistics, or raw with algo.obs_norm=false
        saved = load_checkpoint(checkpoint)
        agent.load_state_dict(saved["agent"])
        if learner.obs_stats is not None:
            learner.obs_stats.load_state_dict(saved["normalization"]["obs"])
            xs = learner.obs_stats.normalize(xs)
    state = agent.core.initial_state(EPISODES)
    no_reward = torch.zeros(EPISODES)
    with torch.no_grad():
        for t, x in enumerate(xs):
            start = torch.full((EPISODES,), t == 0)
            prev = torch.as_tensor(taken[t])
            out, state = agent.core(agent.core_input(x, prev, no_reward, start), state)
        answer = greedy_action(agent.heads(out)[0]).numpy()
    ones, minus = torch.as_tensor(context > 0), torch.as_tensor(context < 0)
    if not (ones.any() and minus.any()):
        raise RuntimeError(f"seed {seed}: all {EPISODES} episodes drew the same context")
    diff = out[ones].mean(0) - out[minus].mean(0)
    size = out.norm(dim=1).mean()
    return {
        "L": length,
        "seed": seed,
        "|h|": float(size),
        "|dh|": float(diff.norm()),
        "ratio": float(diff.norm() / size),
        "units": int((diff.abs() > 0.01 * out.abs().max()).sum()),
        "of": out.shape[1],
        "readout": readout_accuracy(out.double().numpy(), context > 0),
        "answer": float((answer == (context > 0)).mean()),
    }


def readout_accuracy(features: np.ndarray, label: np.ndarray, ridge: float = 0.1) -> float:
    """Held-out accuracy of an L2-regularised logistic regression of ``label`` on ``features``,
    fitted by Newton's method on the first 3/4 of the rows (standardised by their statistics)."""
    fit = slice(0, 3 * len(label) // 4)
    mean, std = features[fit].mean(0), features[fit].std(0) + 1e-8
    x = np.c_[(features - mean) / std, np.ones(len(label))]
    y, w = label.astype(float), np.zeros(x.shape[1])
    for _ in range(25):
        p = 1 / (1 + np.exp(-x[fit] @ w))
        grad = x[fit].T @ (p - y[fit]) + ridge * w
        hess = (x[fit].T * (p * (1 - p))) @ x[fit] + ridge * np.eye(len(w))
        w -= np.linalg.solve(hess, grad)
    test = slice(fit.stop, None)
    return float(((x[test] @ w > 0) == label[test]).mean())


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chain_signal", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[4, 16, 64, 128])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="OVERRIDE", help="train.py overrides (core=...)"
    )
    parser.add_argument(
        "--actions", choices=("zero", "random"), default="zero", help="actions before the last step"
    )
    parser.add_argument("--checkpoint", help="a trained algo=stream run's checkpoint.pt (its own length)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(
        f"{'L':>5} {'seed':>4} {'|h|':>7} {'|dh|':>7} {'ratio':>7} {'units':>9} {'readout':>7} {'answer':>6}"
    )
    for length in args.lengths if args.checkpoint is None else [0]:
        for seed in args.seeds:
            r = chain_signal(length, seed, args.set, args.actions, args.checkpoint)
            print(
                f"{r['L']:>5} {r['seed']:>4} {r['|h|']:>7.3f} {r['|dh|']:>7.3f} {r['ratio']:>7.3f} "
                f"{r['units']:>4} / {r['of']} {r['readout']:>7.3f} {r['answer']:>6.3f}"
            )


if __name__ == "__main__":
    main()
