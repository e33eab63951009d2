"""Shared pieces of the rule tests: cores, episodes, reference gradients and dense layouts of traces.

Every estimate is compared in one layout, the dense sensitivity G (B, S, |θ|) with
G[b, j, p] = ∂s_j/∂θ_p, θ flattened in ``core.recurrent_parameters()`` order.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor

from agents.cores import ELSTM, ELSTMRTU, GRU, LSTM, RHN, RTU, RecurrentCore
from agents.rules import KFRTRL, RTRL, TBPTT, UORO, Rule, RuleState

CORES = {
    "elstm": ELSTM,
    "rtu": RTU,
    "elstm_rtu": ELSTMRTU,  # hidden 4: 2 eLSTM units (real) beside 1 complex RTU unit
    "rhn1": lambda d, n: RHN(d, n, depth=1),
    "rhn2": lambda d, n: RHN(d, n, depth=2),
    "rhn3": lambda d, n: RHN(d, n, depth=3),
    "lstm": LSTM,
    "gru": GRU,
}


#: how each rule is built from a core
RULES = {
    "rtrl": lambda core: RTRL(core, method="elementwise"),
    "rtrl_dense": lambda core: RTRL(core, method="dense"),
    "kfrtrl": KFRTRL,
    "uoro": UORO,
    "tbptt": TBPTT,
}

#: (rule, core) pairs covering every rule and every trace layout, for interface-level tests
RULE_CORE_PAIRS = [
    ("rtrl", "elstm"),
    ("rtrl", "rtu"),
    ("rtrl", "elstm_rtu"),
    ("rtrl_dense", "gru"),
    ("rtrl_dense", "rhn2"),
    ("kfrtrl", "rhn2"),
    ("uoro", "gru"),
    ("uoro", "rtu"),
    ("tbptt", "lstm"),
]


def make_core(name: str, input_size: int = 3, hidden_size: int = 4, jitter: float = 0.3) -> RecurrentCore:
    """A core with generic parameters: zero biases or symmetric gates could hide a wrong term."""
    core = CORES[name](input_size, hidden_size)
    with torch.no_grad():
        for p in core.parameters():
            p.add_(jitter * torch.randn_like(p))
    return core


class Episode(NamedTuple):
    xs: Tensor  # (T, B, D)
    starts: Tensor  # (T, B) bool: the state is reset before step t
    ws: Tensor  # (T, B, N): the loss is Σ_t ⟨w_t, out_t⟩

    @property
    def batch(self) -> int:
        return self.xs.shape[1]


#: (step, row) resets: inside a chunk of 5 (7, 13), on a chunk boundary (10), twice in row 0,
#: never in row 3, so that every path through the reset code is exercised.
RESETS = ((7, 0), (10, 1), (13, 0), (13, 2))


def make_episode(core: RecurrentCore, steps: int = 24, batch: int = 4, resets=RESETS) -> Episode:
    xs = torch.randn(steps, batch, core.input_size)
    starts = torch.zeros(steps, batch, dtype=torch.bool)
    for t, b in resets:
        starts[t, b] = True
    return Episode(xs, starts, torch.randn(steps, batch, core.hidden_size))


def _grads(core: RecurrentCore) -> dict[str, Tensor]:
    return {n: p.grad.clone() for n, p in core.named_parameters()}


def bptt_grads(core: RecurrentCore, ep: Episode, span: int | None = None) -> dict[str, Tensor]:
    """Autograd through a plain loop of core steps; the state is cut every ``span`` steps if given."""
    core.zero_grad(set_to_none=False)
    state = core.initial_state(ep.batch)
    loss = 0.0
    for t, (x, start, w) in enumerate(zip(ep.xs, ep.starts, ep.ws, strict=True)):
        if span is not None and t % span == 0:
            state = state.detach()
        state = state * (~start).to(state.dtype)[:, None]
        out, state = core(x, state)
        loss = loss + (w * out).sum()
    loss.backward()
    return _grads(core)


def rule_grads(rule: Rule, ep: Episode, chunk: int) -> dict[str, Tensor]:
    """Gradient through the rule's public interface: chunk 1 is per-step ``step`` + ``reset``,
    larger chunks are ``unroll`` with ``episode_starts``, one backward per chunk as a learner does."""
    rule.core.zero_grad(set_to_none=False)
    rstate = rule.initial_state(ep.batch)
    for t0 in range(0, len(ep.xs), chunk):
        span = slice(t0, t0 + chunk)
        if chunk == 1:
            rstate = rule.reset(rstate, ep.starts[t0])
            out, rstate = rule.step(ep.xs[t0], rstate)
            outs = out[None]
        else:
            outs, rstate = rule.unroll(ep.xs[span], rstate, ep.starts[span])
        (ep.ws[span] * outs).sum().backward()
    return _grads(rule.core)


def relative_errors(got: dict[str, Tensor], want: dict[str, Tensor]) -> dict[str, float]:
    assert got.keys() == want.keys()
    return {n: ((got[n] - want[n]).norm() / want[n].norm()).item() for n in want}


def run_traces(rule: Rule, xs: Tensor, starts: Tensor | None = None) -> RuleState:
    """Advance the rule over xs (T, B, D) without building a graph."""
    with torch.no_grad():
        _, rstate = rule.unroll(xs, rule.initial_state(xs.shape[1]), starts)
    return rstate


def exact_sensitivity(core: RecurrentCore, xs: Tensor, starts: Tensor | None = None) -> Tensor:
    """G (B, S, |θ|) from dense RTRL, itself held equal to BPTT by test_exact.py."""
    return run_traces(RTRL(core, method="dense"), xs, starts).traces["G"]


def dense_layout(rule: Rule, traces: dict[str, Tensor]) -> Tensor:
    """The rule's (estimated) sensitivity as a dense (B, S, |θ|) tensor."""
    if isinstance(rule, KFRTRL):
        # G^l[b, j, (i, k)] = u[b, i] A[b, j, k]: ∂h_j/∂W^l[i, k], W^l flattened row-major
        return torch.cat(
            [torch.einsum("bi,bjk->bjik", u, a).flatten(2) for u, a in rule.factors(traces)],
            dim=2,
        )
    if isinstance(rule, UORO):
        return torch.einsum("bs,bp->bsp", traces["s_tilde"], traces["theta_tilde"])
    if rule.method == "dense":
        return traces["G"]
    blocks = {}
    size = rule.core.state_size
    for part in rule.parts:  # each part's units are its own rows of the state; zero elsewhere
        rows = range(size)[part.state]
        for local in part.core.recurrent_parameters():
            s = traces[part.prefix + local]  # (B, K, *rest): unit k's sensitivity to its own row
            k, rest = s.shape[1], s.shape[2:]
            eye = torch.eye(k, dtype=s.real.dtype).view(1, k, k, *[1] * len(rest))
            block = eye * s[:, None]  # (B, K, K, *rest), zero off the diagonal
            if block.is_complex():  # complex unit k is the part's rows k (real part) and K + k (imaginary)
                block = torch.cat([block.real, block.imag], dim=1)
            full = block.new_zeros(block.shape[0], size, *block.shape[2:])
            full[:, rows.start : rows.stop] = block
            blocks[part.prefix + local] = full.flatten(2)
    return torch.cat([blocks[name] for name in rule.params], dim=2)


def replicate(x: Tensor, rows: int) -> Tensor:
    """(T, 1, ...) -> (T, rows, ...): the same sequence in every row, so rows are independent draws."""
    return x.expand(x.shape[0], rows, *x.shape[2:]).contiguous()


def z_scores(samples: Tensor, target: Tensor) -> Tensor:
    """(mean − target) / standard error per entry, over independent draws along dim 0.

    Entries that never vary (structural zeros, deterministic terms) carry no statistic: they must
    equal the target outright, and are dropped from the returned z.
    """
    mean, se = samples.mean(0), samples.std(0) / math.sqrt(samples.shape[0])
    fixed = se <= 1e-12 * target.abs().max()
    torch.testing.assert_close(mean[fixed], target[fixed], rtol=0, atol=1e-10)
    return ((mean - target) / se)[~fixed]
