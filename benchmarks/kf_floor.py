"""KF-RTRL's trace update against its floor: the batched matmuls H_t · A^l_{t-1}.

One KF-RTRL step on an RHN of depth d must at least multiply the step's Jacobian H_t (B, N, N)
by every micro-layer's A^l (B, N, 2N). Its fastest form, and the floor here, is one batched
matmul H_t · [A¹ … A^d], (B, N, N) @ (B, N, d·2N). Depth d > 1 also has to form H_t = J^d ⋯ J^1,
d − 1 more (B, N, N) products, so its ratio cannot go below 1 + (d − 1)/(2d) (1.33 at d = 3). The
table gives the median time per step of KF-RTRL's trace update (``KFRTRL._advance``: the
Jacobians, the norms, the signs and the mixing) over M steps, as the learner runs it once per
rollout of M steps (M = 1: fully online), and its ratio to the floor, measured interleaved in one
run. At N = 64 the matmul does only N multiply-adds per number it writes, so each of the update's
few unavoidable passes over A (a norm, adding P D) costs a sizeable fraction of it.
Target: ≤ 2× the floor.

    python -m benchmarks.kf_floor [--sizes 64 128 256] [--depths 1 3] [--chunks 1 8] [--batch 16]
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # see benchmarks/rules.py

import argparse
import statistics

import torch

from agents.cores import RHN
from agents.rules import KFRTRL
from benchmarks.common import default_threads, header, timed


def measure(
    n: int, depth: int, batch: int, chunk: int, repeats: int, device: torch.device
) -> tuple[float, float, float]:
    """Median seconds per step of KF-RTRL's trace update over a chunk of ``chunk`` steps and of
    its floor, and their median paired ratio."""
    core = RHN(n, n, depth).to(device)
    rule = KFRTRL(core)
    rstate = rule.initial_state(batch)
    xs = torch.randn(chunk, batch, n, device=device)
    with torch.no_grad():
        for _ in range(3):  # non-zero traces, as in training
            _, rstate = rule.unroll(xs, rstate)
        records, state = [], rstate.state
        for x in xs:
            _, state, record = rule._forward(x, state)
            records.append(record)
    keeps = [torch.ones(batch, device=device)] * chunk  # as the learner: episode starts, none set
    h = torch.randn(batch, n, n, device=device)
    a = rstate.traces["A"].flatten(2)
    kf, floor = [], []
    for rep in range(repeats + 3):
        with torch.no_grad():
            t_kf = timed(lambda: rule._advance(rstate.traces, records, keeps), device) / chunk
            t_floor = timed(lambda: torch.bmm(h, a), device)
        if rep >= 3:
            kf.append(t_kf)
            floor.append(t_floor)
    ratio = statistics.median(k / f for k, f in zip(kf, floor, strict=True))
    return statistics.median(kf), statistics.median(floor), ratio


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    p.add_argument("--depths", type=int, nargs="+", default=[1, 3])
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--chunks", type=int, nargs="+", default=[1, 8], help="steps per trace advance")
    p.add_argument("--repeats", type=int, default=21)
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=default_threads())
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    print(header(f"float32, B={args.batch}", device))
    print(f"{'N':>5} {'depth':>5} {'M':>4} {'KF step ms':>11} {'floor ms':>9} {'×floor':>7}")
    for n in args.sizes:
        for depth in args.depths:
            for chunk in args.chunks:
                kf, floor, ratio = measure(n, depth, args.batch, chunk, args.repeats, device)
                print(f"{n:>5} {depth:>5} {chunk:>4} {kf * 1e3:>11.3f} {floor * 1e3:>9.3f} {ratio:>7.2f}")
    print("M: steps per trace advance (1: fully online; 8: the default rollout); KF step: per step")
    print("floor: one bmm (B,N,N)@(B,N,d·2N); ×floor: median paired ratio; target ≤ 2")


if __name__ == "__main__":
    main()
