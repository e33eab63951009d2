"""Recurrent Highway Network with coupled gates (Zilly et al. 2017), depth d."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor, nn

from agents.cores.base import RecurrentCore

__all__ = ["RHN", "RHNLayerCache"]


class RHNLayerCache(NamedTuple):
    """What one micro-layer saw and computed, for KF-RTRL. All (B, ·)."""

    s_hat: Tensor  # ŝ^{l-1}: [x, s⁰, 1] for the first layer, [s^{l-1}, 1] after, (B, in_l)
    s_prev: Tensor  # s^{l-1}, (B, N)
    c: Tensor  # tanh(z_c), (B, N)
    f: Tensor  # σ(z_f), (B, N)


class RHN(RecurrentCore):
    """RHN with d micro-layers per time step and coupled carry/transform gates:

        s⁰ = h_{t-1};  for l = 1..d:  [z_c, z_f] = ŝ^{l-1} W^l,
            ŝ⁰ = [x_t, s⁰, 1],  ŝ^{l-1} = [s^{l-1}, 1] for l > 1
            c = tanh(z_c),  f = σ(z_f),  s^l = f ⊙ s^{l-1} + (1 − f) ⊙ c
        out_t = h_t = s^d

    W^1: (D + N + 1, 2N), W^{l>1}: (N + 1, 2N), the last row being the bias. State: h, (B, N).
    Initialisation as Zilly et al.: weights U(−0.04, 0.04); the carry gate f starts open
    (bias +2, i.e. their transform-gate bias −2), so that the state starts out remembering.
    """

    def __init__(self, input_size: int, hidden_size: int, depth: int = 1) -> None:
        super().__init__(input_size, hidden_size, state_size=hidden_size)
        if depth < 1:
            raise ValueError(f"RHN depth must be >= 1, got {depth}")
        self.depth = depth
        n = hidden_size
        self.weights = nn.ParameterList()
        for layer in range(depth):
            fan_in = (input_size if layer == 0 else 0) + n + 1
            w = torch.empty(fan_in, 2 * n).uniform_(-0.04, 0.04)
            with torch.no_grad():
                w[-1, :n] = 0.0  # candidate bias
                w[-1, n:] = 2.0  # carry-gate bias
            self.weights.append(nn.Parameter(w))

    def cell(self, x: Tensor, h: Tensor) -> tuple[Tensor, list[RHNLayerCache]]:
        """One step, returning h_t and each micro-layer's cache."""
        n = self.hidden_size
        ones = h.new_ones(h.shape[0], 1)
        s, caches = h, []
        for layer, w in enumerate(self.weights):
            # One matmul with W whole: slicing W would give its gradient one zero-filled
            # full-size buffer per slice.
            s_hat = torch.cat([x, s, ones] if layer == 0 else [s, ones], dim=1)
            z = s_hat @ w
            c, f = torch.tanh(z[:, :n]), torch.sigmoid(z[:, n:])
            caches.append(RHNLayerCache(s_hat, s, c, f))
            s = f * s + (1 - f) * c
        return s, caches

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h, _ = self.cell(x, state)
        return h, h
