"""Truncated BPTT: the baseline every online rule is compared with."""

from __future__ import annotations

from agents.rules.base import Rule

__all__ = ["TBPTT"]


class TBPTT(Rule):
    """Backprop through time inside each chunk (the rollout), none across chunk boundaries.

    The chunk starts from a detached state, so credit from before it is dropped: the gradient is
    exact when the dependency fits in the chunk and biased otherwise. No traces. ``step`` is
    TBPTT with span one.
    """

    carries_credit = False
    chunks_on_core = True

    def _initial_traces(self, batch_size: int):
        return {}

    def _forward(self, x, state):
        out, new = self.core(x, state)
        return out, new, None

    def _advance(self, traces, records, keeps):
        return traces
