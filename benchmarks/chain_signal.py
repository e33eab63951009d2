"""How much of MemoryChain's context an untrained recurrent core still holds when it must answer.

MemoryChain (envs/memory_chain.py) shows one context bit at its start and asks for it L steps
later. A learner without credit through the state (stream AC with TBPTT span 1) can only learn the
answer if the core's state at the query still differs between the two contexts at the core's
*initial* weights: its readout then learns from that difference, and credit through the state
(RTRL) adds nothing. This measures that difference for the streaming agent as ``algo=stream``
builds it (``core=rtu`` by default), before any learning.

For each length L and seed: one batch of episodes with random contexts and the actions held at 0
(they do not matter before the last step), their observations normalised by their own mean and
std (what the learner's running statistics converge to), and the core's output h when the last
action is chosen. Printed per row: ``|h|``, the mean norm of that output; ``|dh|``, the norm of
the difference of the mean outputs of the two contexts; their ratio; and ``units``, the outputs
whose difference exceeds 1% of the largest |h| entry.

Usage:
    python -m benchmarks.chain_signal                          # L 4 16 64 128, seeds 0-2, RTU
    python -m benchmarks.chain_signal --lengths 64 --set core=elstm
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
import torch
from hydra import compose, initialize_config_dir

from agents.stream import StreamLearner
from benchmarks.common import CONFIGS
from envs.memory_chain import MemoryChainVectorEnv

EPISODES = 32  # both contexts appear with probability 1 - 2^-31


def chain_signal(length: int, seed: int, overrides: Sequence[str] = ()) -> dict[str, float]:
    """The row for one length and seed (see the module docstring)."""
    over = ["algo=stream", "env=memory_chain", f"env.memory_length={length}", f"seed={seed}", *overrides]
    with initialize_config_dir(config_dir=str(CONFIGS), version_base="1.3"):
        cfg = compose("config", overrides=over)
    env = MemoryChainVectorEnv(EPISODES, memory_length=length)
    torch.manual_seed(seed)
    agent = StreamLearner.from_config(cfg, env, torch.device("cpu")).agent  # the policy network
    # the L + 1 observations of each episode, the last one seen before the answer
    obs, _ = env.reset(seed=seed)
    context = obs[:, 2].copy()  # 2c - 1, shown at the first step
    steps, actions = [obs], np.zeros(EPISODES, dtype=np.int64)
    for _ in range(length):
        obs = env.step(actions)[0]
        steps.append(obs)
    xs = torch.as_tensor(np.stack(steps))  # (L + 1, B, D)
    flat = xs.reshape(-1, xs.shape[-1])
    xs = (xs - flat.mean(0)) / torch.sqrt(flat.var(0) + 1e-8)
    state = agent.core.initial_state(EPISODES)
    zeros = torch.zeros(EPISODES, dtype=torch.long)
    with torch.no_grad():
        for t, x in enumerate(xs):
            start = torch.full((EPISODES,), t == 0)
            out, state = agent.core(agent.core_input(x, zeros, zeros.float(), start), state)
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
    }


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.chain_signal", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--lengths", type=int, nargs="+", default=[4, 16, 64, 128])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument(
        "--set", nargs="*", default=[], metavar="OVERRIDE", help="train.py overrides (core=...)"
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    print(f"{'L':>5} {'seed':>4} {'|h|':>7} {'|dh|':>7} {'ratio':>7} {'units':>9}")
    for length in args.lengths:
        for seed in args.seeds:
            r = chain_signal(length, seed, args.set)
            print(
                f"{r['L']:>5} {r['seed']:>4} {r['|h|']:>7.3f} {r['|dh|']:>7.3f} {r['ratio']:>7.3f} "
                f"{r['units']:>4} / {r['of']}"
            )


if __name__ == "__main__":
    main()
