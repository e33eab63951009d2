"""Standard LSTM and GRU cells: the TBPTT baselines (and dense-RTRL-able for small N)."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from agents.cores.base import RecurrentCore

__all__ = ["GRU", "LSTM"]


class LSTM(RecurrentCore):
    """torch.nn.LSTMCell behind the one-step interface. State: [h; c], (B, 2N); out = h.
    PyTorch's default initialisation U(−1/√N, 1/√N)."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, state_size=2 * hidden_size)
        self.cell = nn.LSTMCell(input_size, hidden_size)

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h, c = self.cell(x, tuple(state.chunk(2, dim=-1)))
        return h, torch.cat([h, c], dim=-1)


class GRU(RecurrentCore):
    """torch.nn.GRUCell behind the one-step interface. State: h, (B, N); out = h."""

    def __init__(self, input_size: int, hidden_size: int) -> None:
        super().__init__(input_size, hidden_size, state_size=hidden_size)
        self.cell = nn.GRUCell(input_size, hidden_size)

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h = self.cell(x, state)
        return h, h
