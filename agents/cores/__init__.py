"""Recurrent cores: one differentiable time step each, over a flat (B, S) state."""

from agents.cores.base import ElementwiseCore, ElementwiseTerms, RecurrentCore
from agents.cores.baselines import GRU, LSTM
from agents.cores.elstm import ELSTM
from agents.cores.rhn import RHN
from agents.cores.rtu import RTU

__all__ = [
    "ELSTM",
    "GRU",
    "LSTM",
    "RHN",
    "RTU",
    "ElementwiseCore",
    "ElementwiseTerms",
    "RecurrentCore",
]
