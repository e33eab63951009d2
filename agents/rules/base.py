"""What every gradient rule shares: the chunked unroll and the carried-gradient hook.

A rule drives a core over a chunk of M steps (M = 1 is fully online). Inside the chunk the
gradient is plain autograd BPTT; the credit from before the chunk enters through the rule's
sensitivity at the chunk's start (docs/algorithms.md §2):

    dL/dθ = ∂L/∂θ |_(s_0 fixed)  +  Σ_b (dL/ds_0)[b] · G_0[b]

where G_0 = ds_0/dθ is the carried sensitivity (exact or estimated). The second term is added by
a custom autograd node on s_0, so ``loss.backward()`` gives the full-history gradient. After the
chunk the rule advances G once over its M steps, and the next chunk starts from a detached state.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn
from torch.func import functional_call

from agents.cores.base import ElementwiseCore, RecurrentCore

__all__ = ["Rule", "RuleState", "functional_state_step", "index_rows", "scatter_rows"]


class RuleState(NamedTuple):
    """The core state and the rule's traces; every tensor has the batch first."""

    state: Tensor  # (B, S)
    traces: dict[str, Tensor]


def index_rows(rstate: RuleState, rows: Tensor | slice) -> RuleState:
    """The state and traces of the rows ``rows`` (a batch index)."""
    return RuleState(rstate.state[rows], {k: v[rows] for k, v in rstate.traces.items()})


def scatter_rows(parts: list[tuple[Tensor | slice, RuleState]]) -> RuleState:
    """Reassemble a rule state from the states of disjoint row groups covering every row."""
    rows = torch.cat([r for r, _ in parts])
    order = torch.argsort(rows)
    state = torch.cat([rs.state for _, rs in parts])[order]
    traces = {k: torch.cat([rs.traces[k] for _, rs in parts])[order] for k in parts[0][1].traces}
    return RuleState(state, traces)


class _CarryIn(torch.autograd.Function):
    """Identity on s_0 whose backward adds Σ_b (dL/ds_0)[b] · G_0[b] to the parameters' grads."""

    @staticmethod
    def forward(ctx: Any, state: Tensor, contract: Callable, *params: Tensor) -> Tensor:
        ctx.contract = contract
        return state.clone()

    @staticmethod
    def backward(ctx: Any, grad_state: Tensor) -> tuple[Tensor | None, ...]:
        return (None, None, *ctx.contract(grad_state))


def functional_state_step(core: RecurrentCore) -> Callable[[dict, Tensor, Tensor], Tensor]:
    """s_t = f(θ, x_t, s_{t-1}) as a pure function of the recurrent parameters, for torch.func."""

    def f(params: dict[str, Tensor], x: Tensor, state: Tensor) -> Tensor:
        return functional_call(core, params, (x, state))[1]

    return f


class Rule:
    """Base class of the gradient rules. Subclasses say how to carry and advance sensitivities.

    Public interface (the learner uses nothing else):
        rstate = rule.initial_state(batch_size)
        out, rstate = rule.step(x, rstate)                         # one online step
        outs, rstate = rule.unroll(xs, rstate, episode_starts)     # one chunk of M steps
        rstate = rule.reset(rstate, done)
    """

    #: whether the rule carries credit from before a chunk (False only for TBPTT)
    carries_credit: bool = True
    #: whether ``run`` may hand an element-wise core the whole chunk (``unroll_chunk``), whose
    #: records, stacked per field, are what ``_advance`` takes
    chunks_on_core: bool = False

    def __init__(self, core: RecurrentCore) -> None:
        self.core = core
        self.params: dict[str, nn.Parameter] = core.recurrent_parameters()

    # --- subclass hooks -------------------------------------------------------------------
    def _initial_traces(self, batch_size: int) -> dict[str, Tensor]:
        raise NotImplementedError

    def _carried_grads(self, traces: dict[str, Tensor], grad_state: Tensor) -> list[Tensor]:
        """Σ_b grad_state[b] · G[b], one tensor per entry of self.params."""
        raise NotImplementedError

    def _forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Any]:
        """One step with autograd; also returns what ``_advance`` needs, detached."""
        out, new = self.core(x, state)
        return out, new, (x.detach(), state.detach())

    def _advance(
        self, traces: dict[str, Tensor], records: list[Any], keeps: Sequence[Tensor | None]
    ) -> dict[str, Tensor]:
        """Traces at the chunk's end. keeps[t] (B,) is 0 where the state was reset before step t."""
        raise NotImplementedError

    # --- public interface -----------------------------------------------------------------
    def initial_state(self, batch_size: int) -> RuleState:
        """Zero state and traces for ``batch_size`` environments, in the core's dtype and device."""
        return RuleState(self.core.initial_state(batch_size), self._initial_traces(batch_size))

    def reset(self, rstate: RuleState, done: Tensor) -> RuleState:
        """Zero the state and the traces of the rows where ``done`` (B,) bool is True."""
        keep = (~done.to(torch.bool)).to(rstate.state.dtype)
        return RuleState(
            rstate.state * keep[:, None],
            {k: v * keep.view(-1, *([1] * (v.dim() - 1))) for k, v in rstate.traces.items()},
        )

    def reset_nonfinite(self, rstate: RuleState, check_traces: bool) -> RuleState:
        """Reset the rows whose state (or, if ``check_traces``, traces) overflowed, rather than
        carry NaN forward; the values are cleaned first, as 0 · NaN is NaN.

        Learners check the state every update, the traces only after a skipped step: a non-finite
        trace makes the next carried gradient non-finite, so that step is skipped and its rows,
        non-finite by then too, are reset here. Reading every trace once more per update would
        cost ~5% of a short-rollout update.
        """
        # one reduction per row: a row sums to a finite number only if all its entries are finite
        bad = ~torch.isfinite(rstate.state.sum(1))
        for v in rstate.traces.values() if check_traces else ():
            bad |= ~torch.isfinite(v.flatten(1).sum(1))
        if not bad.any():  # one host sync
            return rstate
        clean = RuleState(
            rstate.state.nan_to_num(0.0, 0.0, 0.0),
            {k: v.nan_to_num(0.0, 0.0, 0.0) for k, v in rstate.traces.items()},
        )
        return self.reset(clean, bad)

    def step(self, x: Tensor, rstate: RuleState) -> tuple[Tensor, RuleState]:
        """One online step. x: (B, D) -> out: (B, N). ``loss(out).backward()`` adds the
        full-history gradient to the core's ``.grad``; the gradient w.r.t. x is the one-step one."""
        outs, rstate = self.unroll(x[None], rstate)
        return outs[0], rstate

    def unroll(
        self,
        xs: Tensor,
        rstate: RuleState,
        episode_starts: Tensor | None = None,
        advance: bool = True,
    ) -> tuple[Tensor, RuleState]:
        """Run one chunk. xs: (M, B, D); episode_starts: (M, B) bool, True where the state is
        reset before step t. Returns outs (M, B, N), differentiable w.r.t. the parameters and xs,
        and the state at the chunk's end with the traces advanced (kept as they were if not
        ``advance``, e.g. for all but the last of several PPO epochs over one rollout).

        It is ``attach``, then ``run`` (the autograd part, which the learner may compile), then
        ``advance``."""
        outs, state, records, keeps = self.run(xs, self.attach(rstate), episode_starts, advance)
        return outs, RuleState(state.detach(), self.advance(rstate.traces, records, keeps))

    def run(
        self, xs: Tensor, state: Tensor, episode_starts: Tensor | None = None, record: bool = True
    ) -> tuple[Tensor, Tensor, list[Any], list[Tensor | None]]:
        """The chunk's steps with autograd, from ``state`` (as ``attach`` returns it).

        Returns outs (M, B, N), the state after the last step (not detached), and, if ``record``,
        what ``advance`` needs per step (else empty lists). A rule with ``chunks_on_core`` hands an
        element-wise core the whole chunk: records are then stacked per field, (M, B, ·), and
        keeps is one (M, B) tensor or None."""
        if self.chunks_on_core and isinstance(self.core, ElementwiseCore):
            keep = None if episode_starts is None else (~episode_starts).to(state.dtype)
            outs, state, stacked = self.core.unroll_chunk(xs, state, keep, record)
            return outs, state, list(stacked), [keep] if record else []
        outs, records, keeps = [], [], []
        # unbind, not xs[t]: each slice's backward would zero-fill a whole (M, B, D) gradient
        for t, x in enumerate(xs.unbind(0)):
            keep = None
            if episode_starts is not None:
                keep = (~episode_starts[t]).to(state.dtype)
                state = state * keep[:, None]
            if record:
                out, state, step_record = self._forward(x, state)
                records.append(step_record)
                keeps.append(keep)
            else:  # the traces stay as they are: nothing to record
                out, state = self.core(x, state)
            outs.append(out)
        return torch.stack(outs), state, records, keeps

    def advance(
        self, traces: dict[str, Tensor], records: list[Any], keeps: Sequence[Tensor | None]
    ) -> dict[str, Tensor]:
        """The traces after the chunk ``run`` recorded; unchanged if it recorded nothing."""
        if not records:
            return traces
        with torch.no_grad():
            return self._advance(traces, records, keeps)

    def attach(self, rstate: RuleState) -> Tensor:
        """The chunk's starting state, detached, through which the carried credit enters: its
        backward adds Σ_b (dL/ds_0)[b] · G_0[b] to the parameters' gradients."""
        state = rstate.state.detach()
        if not self.carries_credit or not torch.is_grad_enabled():
            return state
        contract = lambda g: self._carried_grads(rstate.traces, g)  # noqa: E731
        return _CarryIn.apply(state, contract, *self.params.values())

    def __repr__(self) -> str:
        return f"{type(self).__name__}({type(self.core).__name__})"
