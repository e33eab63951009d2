"""Gradient noise of KF-RTRL and UORO against exact RTRL, the parameters held fixed
(Mujika, Meier & Steger 2018, "Approximating Real-Time Recurrent Learning with Random Kronecker
Factors", the variance analysis).

What is measured. One RHN core (depth 1 by default, Zilly's initialisation, seeded) reads a
random stream of one-hot symbols; nothing is ever updated. At every step t a fixed readout loss
L_t = CE(V h_t, y_t) (V a fixed random (K, N) matrix, y_t random targets) defines the immediate
error e_t = ∂L_t/∂h_t, and the full-history gradient of L_t through the recurrent weights is

    g_t = e_tᵀ G_t          (G_t = dh_t/dθ, from dense exact RTRL, which tests hold equal to BPTT)
    ĝ_t = e_tᵀ Ĝ_t          (Ĝ_t the rule's estimate: u ⊗ A for KF-RTRL, s̃ ⊗ θ̃ for UORO)

each contracted by the rule's own carried-gradient code. R independent sign draws are R rows of
one batch that all read the same input sequence. The normalised variance at step t is

    nv_t = E‖ĝ_t − g_t‖² / ‖g_t‖²        (E: the mean over the R draws)

the quantity of the paper's variance plots (noise relative to the true gradient). Both
estimators are unbiased, so nv_t is their variance in units of the signal. KF-RTRL's first
step is exact (nv_1 = 0); UORO's is not.

What to expect (docs/algorithms.md §7): KF-RTRL's nv is O(1) and flat in t, while UORO's is about N×
larger. Measured at the defaults (benchmarks/results/diagnostics/grad_noise.md): both are flat
in t; KF-RTRL's stays at 2–3 for N = 16…128 (it does not fall with N under this normalisation),
UORO's grows ∝ N (about 1.6 N), so UORO/KF goes from 13 to 71. The table gives medians over two
windows of steps (a single step's ratio is noisy where ‖g_t‖ happens to be small), the PNG the
per-step curves and the N sweep.

Usage (writes benchmarks/results/diagnostics/grad_noise.{md,png} and prints the table):
    python -m benchmarks.grad_noise
    python -m benchmarks.grad_noise --sizes 16 32 --steps 100 --draws 64 --seed 1
"""

from __future__ import annotations

import os

# sleeping OpenMP threads: see benchmarks/rules.py
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import argparse
import statistics
import sys
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.func import vmap

from agents.cores import RHN
from agents.rules import KFRTRL, RTRL, UORO, Rule
from benchmarks.common import Stopwatch, default_threads, markdown_table, provenance

__all__ = ["ESTIMATORS", "measure_noise", "normalised_variance", "per_row_carried_grads"]

RESULTS = Path(__file__).resolve().parent / "results" / "diagnostics"

#: the estimators compared with exact RTRL, each built from the core and a sign generator
ESTIMATORS: dict[str, Callable[[RHN, torch.Generator], Rule]] = {
    "KF-RTRL": lambda core, gen: KFRTRL(core, generator=gen),
    "UORO": lambda core, gen: UORO(core, generator=gen),
}


def per_row_carried_grads(rule: Rule, traces: dict[str, Tensor], grad_state: Tensor) -> Tensor:
    """Each row's carried gradient e_bᵀ G_b, (B, |θ|) flattened in ``rule.params`` order.

    The rule's own contraction Σ_b e_bᵀ G_b (what ``loss.backward()`` adds) applied to one row at a
    time under vmap, so that no estimator's layout is rebuilt here."""

    def one(row: dict[str, Tensor], e: Tensor) -> Tensor:
        grads = rule._carried_grads({k: v[None] for k, v in row.items()}, e[None])
        return torch.cat([g.flatten() for g in grads])

    return vmap(one)(traces, grad_state)


def normalised_variance(estimates: Tensor, exact: Tensor) -> float:
    """E‖ĝ − g‖² / ‖g‖² over the rows of estimates (R, P); exact (P,)."""
    return ((estimates - exact).pow(2).sum(1).mean() / exact.pow(2).sum()).item()


def _readout_error(h: Tensor, readout: Tensor, target: Tensor) -> Tensor:
    """e = ∂CE(V h, y)/∂h = Vᵀ (softmax(V h) − onehot(y)); h: (1, N), readout V: (K, N)."""
    probs = torch.softmax(h @ readout.T, dim=-1)
    return (probs - F.one_hot(target, readout.shape[0]).to(h.dtype)) @ readout


def measure_noise(
    hidden: int,
    steps: int,
    draws: int,
    seed: int = 0,
    input_size: int = 4,
    classes: int = 4,
    depth: int = 1,
    estimators: dict[str, Callable[[RHN, torch.Generator], Rule]] | None = None,
    dtype: torch.dtype = torch.float64,
    device: torch.device | str = "cpu",
) -> dict[str, list[float]]:
    """nv_t for t = 1..steps, per estimator name (default :data:`ESTIMATORS`), RHN of size
    ``hidden`` and ``depth`` on a random one-hot stream of ``input_size`` symbols, ``draws`` sign
    draws. Deterministic given ``seed``."""
    estimators = ESTIMATORS if estimators is None else estimators
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    core = RHN(input_size, hidden, depth=depth).to(device=device, dtype=dtype)
    xs = F.one_hot(torch.randint(0, input_size, (steps,), generator=gen), input_size).to(device, dtype)
    targets = torch.randint(0, classes, (steps, 1), generator=gen).to(device)
    readout = (torch.randn(classes, hidden, generator=gen) / hidden**0.5).to(device, dtype)
    exact = RTRL(core, method="dense")
    signs = torch.Generator(device=device).manual_seed(seed + 1)
    rules = {name: make(core, signs) for name, make in estimators.items()}
    rstates = {name: rule.initial_state(draws) for name, rule in rules.items()}
    ref = exact.initial_state(1)
    curves: dict[str, list[float]] = {name: [] for name in rules}
    with torch.no_grad():
        for x, y in zip(xs, targets, strict=True):
            ref = exact.step(x[None], ref)[1]
            e = _readout_error(ref.state, readout, y)  # (1, N): every draw has the same state
            g = per_row_carried_grads(exact, ref.traces, e)[0]
            for name, rule in rules.items():
                rstates[name] = rule.step(x.expand(draws, -1), rstates[name])[1]
                g_hat = per_row_carried_grads(rule, rstates[name].traces, e.expand(draws, -1))
                curves[name].append(normalised_variance(g_hat, g))
    return curves


def windows(steps: int) -> tuple[range, range]:
    """The early and late windows of steps (1-based) whose medians the table gives."""
    return range(max(2, steps // 10), max(3, steps // 4) + 1), range(steps // 2 + 1, steps + 1)


def window_median(curve: list[float], steps: range) -> float:
    return statistics.median(curve[t - 1] for t in steps)


def plot(results: dict[int, dict[str, list[float]]], path: Path, late: range) -> None:
    """Left: nv_t per N (colour) and estimator (line style); right: the late medians over N, with
    a line ∝ N through UORO's first point."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_t, ax_n) = plt.subplots(1, 2, figsize=(11, 4.6))
    cmap = plt.get_cmap("viridis")
    sizes = sorted(results)
    for i, n in enumerate(sizes):
        colour = cmap(i / max(1, len(sizes) - 1))
        for name, style in zip(ESTIMATORS, ("-", "--"), strict=False):
            curve = results[n][name]
            ax_t.plot(range(2, len(curve) + 1), curve[1:], style, color=colour, lw=1, label=f"{name} N={n}")
    ax_t.set(yscale="log", xlabel="time step t", ylabel="E‖ĝ−g‖² / ‖g‖²")
    ax_t.legend(fontsize=7, ncol=len(sizes), loc="lower center", bbox_to_anchor=(0.5, 1.0))
    medians = {name: [window_median(results[n][name], late) for n in sizes] for name in ESTIMATORS}
    for (name, values), marker in zip(medians.items(), ("o", "s"), strict=False):
        ax_n.plot(sizes, values, marker=marker, label=name)
    if "UORO" in medians:
        ax_n.plot(sizes, [medians["UORO"][0] * n / sizes[0] for n in sizes], ":", color="grey", label="∝ N")
    ax_n.set(
        xscale="log",
        yscale="log",
        xlabel="hidden units N",
        ylabel=f"median over t = {late.start}..{late.stop - 1}",
        title="normalised variance over N",
    )
    ax_n.minorticks_off()
    ax_n.set_xticks(sizes, [str(n) for n in sizes])
    ax_n.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[16, 32, 64, 128], help="hidden sizes N")
    p.add_argument("--steps", type=int, default=300, help="time steps per sequence")
    p.add_argument("--draws", type=int, default=64, help="independent sign draws R per step")
    p.add_argument("--input-size", type=int, default=4, help="symbols of the one-hot input stream")
    p.add_argument("--depth", type=int, default=1, help="RHN micro-layers")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=int, default=default_threads())
    p.add_argument("--out", type=Path, default=RESULTS, help="folder for grad_noise.{md,png}")
    args = p.parse_args(argv)
    if args.steps < 8:
        p.error(f"--steps must be at least 8 (the table's windows), got {args.steps}")
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    clock = Stopwatch()
    results = {
        n: measure_noise(
            n,
            args.steps,
            args.draws,
            args.seed,
            args.input_size,
            depth=args.depth,
            dtype=getattr(torch, args.dtype),
            device=device,
        )
        for n in args.sizes
    }
    early, late = windows(args.steps)
    rows = []
    for n in args.sizes:
        kf, uoro = results[n]["KF-RTRL"], results[n]["UORO"]
        cells = [window_median(c, w) for c in (kf, uoro) for w in (early, late)]
        rows.append([str(n), *(f"{v:.3g}" for v in cells), f"{cells[3] / cells[1]:.1f}"])
    span = lambda w: f"t={w.start}..{w.stop - 1}"  # noqa: E731
    table = markdown_table(
        [
            "N",
            f"KF-RTRL {span(early)}",
            f"KF-RTRL {span(late)}",
            f"UORO {span(early)}",
            f"UORO {span(late)}",
            "UORO / KF (late)",
        ],
        rows,
    )
    setup = (
        f"RHN depth {args.depth}, one-hot stream of {args.input_size} symbols, {args.steps} steps, "
        f"R = {args.draws} sign draws per step, {args.dtype}, seed {args.seed}; parameters fixed"
    )
    command = " ".join(["python -m benchmarks.grad_noise", *(sys.argv[1:] if argv is None else argv)])
    args.out.mkdir(parents=True, exist_ok=True)
    plot(results, args.out / "grad_noise.png", late)
    text = "\n\n".join(
        [
            "# Gradient noise: normalised variance E‖ĝ_t − g_t‖² / ‖g_t‖² (medians over windows of t)",
            provenance(device),
            setup,
            table,
            f"Command: `{command}`",
            f"{clock}",
        ]
    )
    (args.out / "grad_noise.md").write_text(text + "\n")
    print(text)


if __name__ == "__main__":
    main()
