"""How far the training job runs from the arithmetic it does: the compute floor per env step.

For each agent and number of envs B, one training iteration (``learner.update(learner.collect())``,
M·B env steps) of train.py's learner on the default recall env is split into its phases, and the
FLOPs of each are counted with ``torch.utils.flop_counter.FlopCounterMode``:

* ``act``: the acting forward (``collect``: encoder, core and heads, M steps, no gradients);
* ``fwd``, ``bwd``: the update's re-run of a minibatch through the rule (``rollout_loss``: the
  chunk's unroll, heads and loss) and its backward (carried-credit contraction included), times
  minibatches × epochs;
* ``trace``: the rule's trace advance over the chunk, once per minibatch (last epoch);
* ``opt``: the optimiser. Adam is element-wise, which FlopCounterMode does not count (it counts
  the matmul and convolution family); it is counted here as 13 FLOPs per parameter per step
  (two moment updates, bias-corrected denominator, the step), times minibatches × epochs.

Element-wise work elsewhere (gates, the RTRL products outside ``baddbmm``) is not counted either,
so the FLOPs are a lower bound of the work and the floor below is optimistic.

**The floor.** Every counted kernel call of the iteration is recorded (op, shapes, strides, dtype)
and replayed back to back on fresh tensors of the same layout, with nothing between them; the
median replay time, plus the timed optimiser steps, is ``floor ms``: what this machine needs for
these kernels at these shapes, overheads of the kernels themselves included, none of ours.
``GFLOP/s`` is the counted FLOPs over that time (this machine's rate for the same shapes),
``floor steps/s`` = M·B / floor, ``steps/s`` the measured training iteration (median of
--repeats, after a warm-up), and ``% floor`` = steps/s over floor steps/s: the fraction of the
arithmetic's own speed that the whole job (env steps, Python, autograd, small ops) reaches.

Usage:
    python -m benchmarks.floor                                  # 4 agents x B 16 64 256 1024 (~5 min)
    python -m benchmarks.floor --agents rtrl-elstm --envs 16 256 --repeats 3
    python -m benchmarks.floor --set algo.compile=true          # any train.py override
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/rules.py

import argparse
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_map
from torch.utils.flop_counter import FlopCounterMode

from agents.learner import Learner
from agents.losses import gae
from agents.observations import map_obs
from agents.rules.base import index_rows
from benchmarks.common import Stopwatch, build_learner, format_table, header, sync_device

#: agent label -> train.py overrides
AGENTS = {
    "rtrl-elstm": ["algo=rtrl"],
    "rtrl-rtu": ["algo=rtrl", "core=rtu"],
    "kfrtrl-rhn": ["algo=kfrtrl"],
    "tbptt-lstm": ["algo=tbptt", "core=lstm"],
}
ADAM_FLOPS_PER_PARAM = 13
PHASES = ("act", "fwd", "bwd", "trace", "opt")


def _inplace_baddbmm_flop(self_shape, a_shape, b_shape, out_shape=None, **kwargs) -> int:
    """(b, m, k) @ (b, k, n) accumulated in place: 2·b·m·k·n, as FlopCounterMode counts bmm."""
    b, m, k = a_shape
    return 2 * b * m * k * b_shape[-1]


def flop_counter() -> FlopCounterMode:
    """FlopCounterMode, also counting the in-place ``baddbmm_`` of RTRL's trace advance."""
    return FlopCounterMode(display=False, custom_mapping={torch.ops.aten.baddbmm_: _inplace_baddbmm_flop})


class KernelLog(TorchDispatchMode):
    """Records each call of an op FlopCounterMode counts: (op, args with tensors as layouts)."""

    def __init__(self, counted: set[Any]) -> None:
        super().__init__()
        self.counted, self.calls = counted, []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func.overloadpacket in self.counted:
            layout = lambda t: _Layout.of(t) if isinstance(t, torch.Tensor) else t  # noqa: E731
            self.calls.append((func, tree_map(layout, args), tree_map(layout, kwargs)))
        return func(*args, **kwargs)


@dataclass(frozen=True)
class _Layout:
    shape: tuple[int, ...]
    stride: tuple[int, ...]
    dtype: torch.dtype
    device: torch.device

    @staticmethod
    def of(t: torch.Tensor) -> _Layout:
        return _Layout(tuple(t.shape), tuple(t.stride()), t.dtype, t.device)

    def make(self) -> torch.Tensor:
        span = 1 + sum((n - 1) * s for n, s in zip(self.shape, self.stride, strict=True) if n > 0)
        base = torch.randn(max(span, 1), dtype=self.dtype, device=self.device)
        return base.as_strided(self.shape, self.stride)


@dataclass
class Count:
    """Counted FLOPs per training iteration, by phase, and the kernel calls behind them."""

    flops: dict[str, int]
    calls: list[tuple[Any, Any, Any]]
    opt_steps: int

    @property
    def total(self) -> int:
        return sum(self.flops.values())


def count_iteration(learner: Learner) -> Count:
    """FLOPs of one training iteration by phase (see the module docstring), without training:
    the learner's weights, optimiser and traces are left as they were."""
    flops: dict[str, int] = {}
    calls: list[tuple[Any, Any, Any]] = []

    def counted(phase: str, fn: Callable[[], Any], times: int) -> Any:
        with flop_counter() as fc:
            log = KernelLog(set(fc.flop_registry))
            with log:
                out = fn()
        flops[phase] = flops.get(phase, 0) + times * fc.get_total_flops()
        calls.extend(log.calls * times)
        return out

    cfg, saved = learner.cfg, learner.state_dict()
    ro = counted("act", learner.collect, 1)
    advantages, returns = gae(
        ro.rewards, ro.values, ro.next_value, ro.terminated, ro.ended, cfg.gamma, cfg.gae_lambda
    )
    ppo = cfg.update == "ppo"
    epochs = cfg.num_epochs if ppo else 1
    groups = min(cfg.num_minibatches, learner.num_envs) if ppo else 1
    rows = torch.arange(learner.num_envs // groups, device=learner.device)
    terms, _ = counted(
        "fwd", lambda: learner.rollout_loss(ro, rows, advantages, returns, False), epochs * groups
    )
    counted("bwd", terms.loss.backward, epochs * groups)
    # the advance alone: a recording run (its fwd is already counted) minus a plain one
    with flop_counter() as fc:
        learner.rollout_loss(ro, rows, advantages, returns, True)
    with flop_counter() as plain:
        learner.rollout_loss(ro, rows, advantages, returns, False)
    flops["trace"] = groups * (fc.get_total_flops() - plain.get_total_flops())
    with flop_counter() as fc:  # the advance's kernels, for the replay
        log = KernelLog(set(fc.flop_registry))
        with log:
            sub = index_rows(learner.rstate, rows)
            with torch.no_grad():
                x = _chunk_inputs(learner, ro, rows)
                _, _, records, keeps = learner.rule.run(x, sub.state, ro.episode_starts[:, rows], True)
            calls_before = len(log.calls)
            learner.rule.advance(sub.traces, records, keeps)
    calls.extend(log.calls[calls_before:] * groups)
    n_params = sum(p.numel() for p in learner.agent.parameters())
    flops["opt"] = epochs * groups * ADAM_FLOPS_PER_PARAM * n_params
    learner.optimizer.zero_grad(set_to_none=True)
    learner.load_state_dict(saved)
    return Count(flops, calls, epochs * groups)


def _chunk_inputs(learner: Learner, ro: Any, rows: torch.Tensor) -> torch.Tensor:
    m, b = ro.episode_starts[:, rows].shape
    flat = lambda t: t[:, rows].flatten(0, 1)  # noqa: E731
    return learner.agent.core_input(
        map_obs(flat, ro.obs), flat(ro.prev_actions), flat(ro.prev_rewards), flat(ro.episode_starts)
    ).view(m, b, -1)


def replay_seconds(calls: list[tuple[Any, Any, Any]], device: torch.device, repeats: int) -> float:
    """Median seconds to run the recorded kernel calls back to back on fresh tensors."""
    make = lambda a: a.make() if isinstance(a, _Layout) else a  # noqa: E731
    ready = [(f, tree_map(make, a), tree_map(make, k)) for f, a, k in calls]
    times = []
    for _ in range(repeats + 1):
        sync_device(device)
        t0 = time.perf_counter()
        for f, a, k in ready:
            f(*a, **k)
        sync_device(device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def optimizer_seconds(learner: Learner, steps: int, repeats: int) -> float:
    """Median seconds of ``steps`` optimiser steps on random gradients (weights restored)."""
    saved = learner.state_dict()
    params = list(learner.agent.parameters())
    for p in params:
        p.grad = torch.randn_like(p) * 1e-3
    times = []
    for _ in range(repeats + 1):
        sync_device(learner.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            learner.optimizer.step()
        sync_device(learner.device)
        times.append(time.perf_counter() - t0)
    learner.optimizer.zero_grad(set_to_none=True)
    learner.load_state_dict(saved)
    return statistics.median(times[1:])


def iteration_seconds(learner: Learner, repeats: int) -> float:
    """Median seconds of one training iteration, after one untimed."""
    times = []
    for _ in range(repeats + 1):
        sync_device(learner.device)
        t0 = time.perf_counter()
        learner.update(learner.collect())
        sync_device(learner.device)
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def measure(agent: str, num_envs: int, args: argparse.Namespace) -> list[str]:
    learner, cfg = build_learner([*AGENTS[agent], f"num_envs={num_envs}", *args.set], device=args.device)
    steps = cfg.algo.rollout_len * num_envs
    for _ in range(args.warmup):
        learner.update(learner.collect())
    count = count_iteration(learner)
    floor = replay_seconds(count.calls, learner.device, args.repeats)
    floor += optimizer_seconds(learner, count.opt_steps, args.repeats)
    measured = iteration_seconds(learner, args.repeats)
    learner.envs.close()
    per_step = {k: v / steps for k, v in count.flops.items()}
    return [
        agent,
        str(num_envs),
        *(f"{per_step[p] / 1e3:.0f}" for p in PHASES),
        f"{count.total / steps / 1e3:.0f}",
        f"{count.total / floor / 1e9:.1f}",
        f"{1e3 * floor:.1f}",
        f"{steps / floor:,.0f}",
        f"{steps / measured:,.0f}",
        f"{100 * floor / measured:.0f}%",
    ]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--agents", nargs="+", default=list(AGENTS), choices=list(AGENTS))
    p.add_argument("--envs", type=int, nargs="+", default=[16, 64, 256, 1024], help="num_envs B")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats (median)")
    p.add_argument("--warmup", type=int, default=2, help="untimed iterations first")
    p.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (train.py: 1)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--set", nargs="*", default=[], help="more train.py overrides, e.g. algo.compile=true")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    clock = Stopwatch()
    print(header(f"recall env, {args.threads} thread(s), overrides {args.set or 'none'}", args.device))
    rows = [measure(a, b, args) for a in args.agents for b in args.envs]
    cols = ("agent", "B", *(f"{p} kF" for p in PHASES), "kFLOP/step", "GFLOP/s", "floor ms")
    print(format_table((*cols, "floor steps/s", "steps/s", "% floor"), rows))
    print(
        "\nkF: thousand counted FLOPs per env step, by phase (act: acting forward; fwd, bwd: the "
        "update's unroll and backward, x epochs; trace: the rule's advance; opt: Adam, 13/param).\n"
        "floor ms: the iteration's counted kernels replayed back to back, plus its optimiser "
        "steps; % floor: measured steps/s over floor steps/s."
    )
    print(f"\n{clock}")


if __name__ == "__main__":
    main()
