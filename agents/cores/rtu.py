"""Recurrent Trace Units (Elelimy et al. 2024): complex-diagonal linear recurrence."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cores.base import ElementwiseCore, ElementwiseTerms

__all__ = ["RTU", "THETA_LOG_MAX"]

# θ_log is clamped here. A phase only matters mod 2π, but ∂c/∂θ_log = iθλc grows with θ: under a
# step normalised by the gradient's norm (ObGD) that feeds on itself and ran θ_log to 88.8, where
# exp overflows and the state turns NaN. Adam-trained runs stay below 3.
THETA_LOG_MAX = math.log(1000.0)


class RTU(ElementwiseCore):
    """Linear RTU with a ReLU readout. With n = N/2 complex units c = c¹ + i c²:

        r = exp(−exp(ν)),  θ = exp(min(θ_log, log 1000)),  λ = r e^{iθ} = g + i φ,  n_r = sqrt(1 − r²)
        c¹_t = g c¹_{t-1} − φ c²_{t-1} + n_r (W₁ x_t)
        c²_t = g c²_{t-1} + φ c¹_{t-1} + n_r (W₂ x_t)        i.e.  c_t = λ c_{t-1} + n_r (W₁ + i W₂) x_t
        out_t = relu([c¹_t; c²_t])

    State: [c¹; c²], (B, N); hidden_size N must be even. Initialisation as the authors': r² ~ U(0, 1),
    θ ~ U(0, 2π), W₁, W₂ ~ N(0, 1/D).
    """

    def __init__(self, input_size: int, hidden_size: int) -> None:
        if hidden_size % 2:
            raise ValueError(f"RTU needs an even hidden_size (N/2 complex units), got {hidden_size}")
        super().__init__(input_size, hidden_size, state_size=hidden_size)
        n = hidden_size // 2
        r2 = torch.rand(n).clamp(1e-4, 1 - 1e-4)
        self.nu_log = nn.Parameter(torch.log(-0.5 * torch.log(r2)))
        self.theta_log = nn.Parameter(torch.log(2 * math.pi * torch.rand(n).clamp_min(1e-4)))
        self.W1 = nn.Parameter(torch.randn(n, input_size) / math.sqrt(input_size))
        self.W2 = nn.Parameter(torch.randn(n, input_size) / math.sqrt(input_size))

    def _coefficients(self) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
        nu, theta = torch.exp(self.nu_log), torch.exp(self.theta_log.clamp(max=THETA_LOG_MAX))
        r = torch.exp(-nu)
        g, phi = r * torch.cos(theta), r * torch.sin(theta)
        norm = torch.sqrt(1 - r * r)
        return nu, theta, g, phi, norm

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        c = self._step(x, state)[0]
        return F.relu(c), c

    def _step(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        _, _, g, phi, norm = self._coefficients()
        c1, c2 = state.chunk(2, dim=-1)
        u1, u2 = F.linear(x, self.W1), F.linear(x, self.W2)
        new = torch.cat([g * c1 - phi * c2 + norm * u1, g * c2 + phi * c1 + norm * u2], dim=-1)
        return new, u1, u2

    def to_diagonal(self, state_like: Tensor) -> Tensor:
        c1, c2 = state_like.chunk(2, dim=-1)
        return torch.complex(c1, c2)

    def step_with_record(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        c, u1, u2 = self._step(x, state)
        return F.relu(c), c, (x.detach(), state.detach(), u1.detach(), u2.detach())

    def unroll_chunk(
        self, xs: Tensor, state: Tensor, keeps: Tensor | None = None, record: bool = True
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """The chunk's steps as ``step_with_record``'s loop computes them, with λ, n_r and the
        input projections W₁x_t, W₂x_t computed once for all M steps: only the element-wise
        recurrence c_t = λ c_{t-1} + n_r u_t is left in the loop (tests/cores: equal to the loop)."""
        _, _, g, phi, norm = self._coefficients()
        u1s, u2s = F.linear(xs, self.W1), F.linear(xs, self.W2)  # (M, B, n) each
        a1, a2 = norm * u1s, norm * u2s
        prevs, cs = [], []
        for t in range(xs.shape[0]):
            if keeps is not None:
                state = state * keeps[t][:, None]
            prevs.append(state)
            c1, c2 = state.chunk(2, dim=-1)
            state = torch.cat([g * c1 - phi * c2 + a1[t], g * c2 + phi * c1 + a2[t]], dim=-1)
            cs.append(state)
        prev, cs = torch.stack(prevs), torch.stack(cs)
        records = (xs.detach(), prev.detach(), u1s.detach(), u2s.detach()) if record else ()
        return F.relu(cs), state, records

    @torch.no_grad()
    def local_terms(self, record: tuple[Tensor, ...]) -> ElementwiseTerms:
        """docs/algorithms.md §3, in complex coordinates, from record = (x, [c¹; c²]_{t-1}, W₁x, W₂x):
        a = λ;  ∂c/∂ν = −e^ν λ c_{t-1} + (r² e^ν / n_r) u;  ∂c/∂θ_log = i θ λ c_{t-1} (0 above the clamp);
        ∂c/∂W₁ = n_r ⊗ x,  ∂c/∂W₂ = i n_r ⊗ x,  with u = (W₁ + i W₂) x.
        """
        x, state, u1, u2 = record
        nu, theta, g, phi, norm = self._coefficients()
        lam = torch.complex(g, phi)
        c_prev = self.to_diagonal(state)
        u = torch.complex(u1, u2)
        r2 = g * g + phi * phi
        ones = torch.ones_like(c_prev)
        return ElementwiseTerms(
            a=lam.expand_as(c_prev),
            coef={
                "nu_log": -nu * lam * c_prev + (r2 * nu / norm) * u,
                "theta_log": 1j * (theta * (self.theta_log <= THETA_LOG_MAX)) * lam * c_prev,
                "W1": norm * ones,
                "W2": 1j * norm * ones,
            },
            inputs={"nu_log": None, "theta_log": None, "W1": x, "W2": x},
        )
