"""Overshooting-bounded gradient descent (ObGD; Elsayed, Vasan & Mahmood 2024, Algorithm 3).

ObGD is semi-gradient TD(λ) with a step size that shrinks whenever the full step would move the
prediction past its target. For B independent streams b (environments), each with its own
eligibility trace z_b over the parameters, its TD error δ_b and the gradient g_b of its prediction
(∇V for a critic, ∇[log π + τ sign(δ) H] for an actor):

    z_b ← keep_b γλ z_b + g_b                       keep_b = 0 at an episode's first step
    δ̄_b = max(|δ_b|, 1)
    d   = Σ_b ω_b δ_b z_b,       M = α κ Σ_b ω_b δ̄_b ‖z_b‖₁         (‖·‖₁ over every parameter)
    p   ← p + (α / max(M, 1)) d

with weights ω_b = 1 / (number of streams taking part), 0 for a stream that does not (a masked
step). With B = 1 this is the paper's step exactly: d = δ z and M = α κ δ̄ ‖z‖₁.

Why it bounds the step: for a prediction whose gradient has entries of at most 1 in magnitude
(the paper's linear case, features in [−1, 1]) the step changes any stream's prediction by at most
s Σ_b ω_b |δ_b| ‖z_b‖₁ with s = α / max(M, 1), which is ≤ 1/κ in general and ≤ |δ|/κ with one
stream: for κ ≥ 1 a TD target is never overshot (tests/test_obgd.py checks it).

``p.grad`` holds g summed over the streams, as autograd leaves it; pass ``grads`` ((B, Σ|p|), each
stream's gradient flattened) for per-stream gradients. The traces live in one such flat buffer.
Note the sign: the parameters *ascend* δ z; the gradients are those of the prediction, not of a
loss. A stream whose δ or trace is not finite is left out of the step and its trace zeroed, so NaN
and Inf never reach the weights.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple

import torch
from torch import Tensor
from torch.optim import Optimizer

__all__ = ["ObGD", "ObGDStep"]


class ObGDStep(NamedTuple):
    """What one step did (0-d tensors, no host sync)."""

    step_size: Tensor  # α / max(M, 1), the effective step size
    bound: Tensor  # M; the step was shrunk where M > 1
    trace_norm: Tensor  # Σ_b ω_b ‖z_b‖₁
    dropped: Tensor  # streams left out because their δ or trace was not finite


class ObGD(Optimizer):
    """ObGD over ``params`` with ``num_streams`` eligibility traces per parameter.

    Args:
        params: the parameters (one group: one bound per optimiser).
        lr: α.  gamma: γ.  trace_lambda: λ (``lambda`` is a Python keyword).  kappa: κ ≥ 1.
        num_streams: B, the independent streams (environments) whose traces are kept apart.
    """

    def __init__(
        self,
        params: Iterable[Tensor],
        lr: float = 1.0,
        gamma: float = 0.99,
        trace_lambda: float = 0.8,
        kappa: float = 2.0,
        num_streams: int = 1,
    ) -> None:
        if lr < 0 or kappa <= 0 or not 0 <= gamma <= 1 or not 0 <= trace_lambda <= 1 or num_streams < 1:
            raise ValueError(
                "ObGD needs lr >= 0, kappa > 0, gamma and trace_lambda in [0, 1], num_streams >= 1; "
                f"got lr={lr}, kappa={kappa}, gamma={gamma}, trace_lambda={trace_lambda}, "
                f"num_streams={num_streams}"
            )
        defaults = {"lr": lr, "gamma": gamma, "trace_lambda": trace_lambda, "kappa": kappa}
        super().__init__(params, defaults)
        if len(self.param_groups) != 1:
            raise ValueError("ObGD takes one parameter group: the bound is one number per optimiser")
        self.num_streams = num_streams

    def _flat_trace(self) -> Tensor:
        """All traces in one (B, Σ|p|) buffer, kept in the first parameter's state (so that
        ``state_dict`` carries it), parameters in order: one pass per step, not one per tensor."""
        params = self.param_groups[0]["params"]
        state = self.state[params[0]]
        if "trace" not in state:
            state["trace"] = params[0].new_zeros(self.num_streams, sum(p.numel() for p in params))
        return state["trace"]

    def traces(self) -> list[Tensor]:
        """z per parameter, (B, *shape) each (zeros before the first step)."""
        params = self.param_groups[0]["params"]
        parts = self._flat_trace().split([p.numel() for p in params], dim=1)
        return [z.reshape(self.num_streams, *p.shape) for z, p in zip(parts, params, strict=True)]

    @torch.no_grad()
    def step(  # type: ignore[override]  (ObGD's step needs δ; it takes no closure)
        self,
        delta: Tensor,
        grads: Tensor | None = None,
        keep: Tensor | None = None,
        weight: Tensor | None = None,
    ) -> ObGDStep:
        """One ObGD step.

        Args:
            delta: δ_b, (B,).
            grads: g_b, (B, Σ|p|): each stream's gradient flattened, parameters in order; default
                the parameters' ``.grad`` (None: zeros), which needs B = 1.
            keep: (B,), 0 where the stream's trace restarts (an episode's first step); default 1.
            weight: ω_b (B,) ≥ 0 summing to 1 over the streams that take part; default 1/B.
        """
        group = self.param_groups[0]
        params = group["params"]
        b = self.num_streams
        if grads is None:
            if b != 1:
                raise ValueError("with several streams, pass their gradients (grads=), (B, Σ|p|)")
            grads = torch.cat(
                [(torch.zeros_like(p) if p.grad is None else p.grad).reshape(-1) for p in params]
            )
        z = self._flat_trace()
        delta = delta.reshape(b).to(z.dtype)
        decay = group["gamma"] * group["trace_lambda"]
        keep = torch.ones_like(delta) if keep is None else keep.to(z.dtype).reshape(b)
        weight = torch.full_like(delta, 1.0 / b) if weight is None else weight.to(z.dtype).reshape(b)
        # z_b ← keep_b γλ z_b + g_b, and ‖z_b‖₁
        z.mul_((keep * decay)[:, None]).add_(grads.reshape(b, -1))
        l1 = z.abs().sum(1)
        # a stream whose δ or trace is not finite takes no part, and its trace starts again
        bad = ~(torch.isfinite(delta) & torch.isfinite(l1))
        if bad.any():  # sync point
            z[bad] = 0
            weight, delta, l1 = (torch.where(bad, 0.0, t) for t in (weight, delta, l1))
        delta_bar = delta.abs().clamp_min(1.0)
        bound = group["lr"] * group["kappa"] * (weight * delta_bar * l1).sum()
        step_size = group["lr"] / bound.clamp_min(1.0)
        update = (step_size * weight * delta) @ z  # Σ_b coef_b z_b, (Σ|p|,)
        parts = update.split([p.numel() for p in params])
        torch._foreach_add_(params, [u.view_as(p) for u, p in zip(parts, params, strict=True)])
        return ObGDStep(step_size, bound, (weight * l1).sum(), bad.sum())
