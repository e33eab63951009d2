"""Unbiased Online Recurrent Optimisation (Tallec & Ollivier 2017): the noisy foil."""

from __future__ import annotations

import torch
from torch import Tensor
from torch.func import jvp, vjp, vmap

from agents.cores.base import RecurrentCore
from agents.rules.base import Rule, functional_state_step
from agents.rules.signs import random_signs, safe_ratio_sqrt

__all__ = ["UORO"]


class UORO(Rule):
    """Rank-one estimate G ≈ s̃ ⊗ θ̃ for any core. Per step, with ν fresh ±1 signs (B, S):

        s̃' = H_t s̃            (a JVP through the step, no finite differences)
        δθ = νᵀ ∂s_t/∂θ        (a per-environment VJP)
        ρ₀ = sqrt(‖θ̃‖/‖s̃'‖),  ρ₁ = sqrt(‖δθ‖/‖ν‖)
        s̃ ← ρ₀ s̃' + ρ₁ ν,     θ̃ ← θ̃/ρ₀ + δθ/ρ₁
        ∂L/∂θ += Σ_b (e_b · s̃_b) θ̃_b

    After a reset (s̃ = 0, θ̃ = 0) this gives s̃ ⊗ θ̃ = ν ⊗ δθ, whose mean is exact. Its variance
    grows about N× faster than KF-RTRL's (docs/algorithms.md §6–7).
    """

    def __init__(self, core: RecurrentCore, generator: torch.Generator | None = None) -> None:
        super().__init__(core)
        self.generator = generator
        self._state_step = functional_state_step(core)
        self._n_params = sum(p.numel() for p in self.params.values())

    def _initial_traces(self, batch_size: int) -> dict[str, Tensor]:
        state = self.core.initial_state(batch_size)
        return {"s_tilde": state, "theta_tilde": state.new_zeros(batch_size, self._n_params)}

    def _carried_grads(self, traces: dict[str, Tensor], grad_state: Tensor) -> list[Tensor]:
        weight = (grad_state * traces["s_tilde"]).sum(1)  # e_b · s̃_b, (B,)
        flat = weight @ traces["theta_tilde"]  # (|θ|,)
        out, i = [], 0
        for p in self.params.values():
            out.append(flat[i : i + p.numel()].view_as(p))
            i += p.numel()
        return out

    def _advance(self, traces, records, keeps):
        params = {k: p.detach() for k, p in self.params.items()}
        s_t, th_t = traces["s_tilde"], traces["theta_tilde"]

        def row_vjp(x: Tensor, state: Tensor, nu: Tensor) -> dict[str, Tensor]:
            _, pullback = vjp(lambda p: self._state_step(p, x[None], state[None])[0], params)
            return pullback(nu)[0]

        for (x, state), keep in zip(records, keeps, strict=True):
            if keep is not None:
                s_t, th_t = s_t * keep[:, None], th_t * keep[:, None]
            step = lambda s: self._state_step(params, x, s)  # noqa: E731, B023
            _, s_next = jvp(step, (state,), (s_t,))  # H_t s̃, (B, S)
            nu = random_signs(state.shape, state, self.generator)
            d_theta = vmap(row_vjp)(x, state, nu)
            d_theta = torch.cat([d_theta[n].flatten(1) for n in self.params], dim=1)  # (B, |θ|)
            rho0 = safe_ratio_sqrt(th_t.norm(dim=1), s_next.norm(dim=1))[:, None]
            rho1 = safe_ratio_sqrt(d_theta.norm(dim=1), nu.norm(dim=1))[:, None]
            s_t = rho0 * s_next + rho1 * nu
            th_t = th_t / rho0 + d_theta / rho1
        return {"s_tilde": s_t, "theta_tilde": th_t}
