"""Element-wise LSTM (eLSTM), Irie, Gopalakrishnan & Schmidhuber 2023."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from agents.cores.base import ElementwiseCore, ElementwiseTerms

__all__ = ["ELSTM"]


class ELSTM(ElementwiseCore):
    """eLSTM: the recurrence runs through the cell c only, and each unit sees only its own cell.

        f_t = σ(F x_t + w_f ⊙ c_{t-1} + b_f)           F, Z: (N, D);  w_f, w_z, b_f, b_z: (N,)
        z_t = tanh(Z x_t + w_z ⊙ c_{t-1} + b_z)
        c_t = f_t ⊙ c_{t-1} + (1 − f_t) ⊙ z_t
        out_t = σ(W_o [x_t; c_t] + b_o) ⊙ c_t           (a feed-forward readout of c_t)

    State: c, (B, N). Weights are initialised N(0, 0.1) as in the paper; biases at zero.
    """

    readout_parameter_names = ("W_o", "b_o")

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, state_size=hidden_size)
        n, d = hidden_size, input_size
        self.F = nn.Parameter(torch.randn(n, d) * 0.1)
        self.Z = nn.Parameter(torch.randn(n, d) * 0.1)
        self.w_f = nn.Parameter(torch.randn(n) * 0.1)
        self.w_z = nn.Parameter(torch.randn(n) * 0.1)
        self.b_f = nn.Parameter(torch.zeros(n))
        self.b_z = nn.Parameter(torch.zeros(n))
        self.W_o = nn.Parameter(torch.randn(n, d + n) * 0.1)
        self.b_o = nn.Parameter(torch.zeros(n))

    def _gates(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        f = torch.sigmoid(F.linear(x, self.F, self.b_f) + self.w_f * c)
        z = torch.tanh(F.linear(x, self.Z, self.b_z) + self.w_z * c)
        return f, z

    def _readout(self, x: Tensor, c: Tensor) -> Tensor:
        return torch.sigmoid(F.linear(torch.cat([x, c], dim=-1), self.W_o, self.b_o)) * c

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        out, c, _ = self.step_with_record(x, state)
        return out, c

    def step_with_record(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        f, z = self._gates(x, state)
        c = f * state + (1 - f) * z
        return self._readout(x, c), c, (x.detach(), state.detach(), f.detach(), z.detach())

    @torch.no_grad()
    def local_terms(self, record: tuple[Tensor, ...]) -> ElementwiseTerms:
        """docs/algorithms.md §1, from record = (x, c_{t-1}, f, z):
        φ = (c_{t-1} − z) ⊙ f ⊙ (1 − f),  ζ = (1 − f) ⊙ (1 − z²),  a = f + w_f ⊙ φ + w_z ⊙ ζ.
        """
        x, c_prev, f, z = record
        phi = (c_prev - z) * f * (1 - f)
        zeta = (1 - f) * (1 - z * z)
        a = f + self.w_f * phi + self.w_z * zeta
        return ElementwiseTerms(
            a=a,
            coef={"F": phi, "Z": zeta, "w_f": phi * c_prev, "w_z": zeta * c_prev, "b_f": phi, "b_z": zeta},
            inputs={"F": x, "Z": x, "w_f": None, "w_z": None, "b_f": None, "b_z": None},
        )
