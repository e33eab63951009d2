"""Recurrent cores: one differentiable time step each, over a flat (B, S) state."""

from agents.cores.base import ElementwiseCore, ElementwisePart, ElementwiseTerms, RecurrentCore
from agents.cores.baselines import GRU, LSTM
from agents.cores.elstm import ELSTM
from agents.cores.mixed import ELSTMRTU
from agents.cores.rhn import RHN
from agents.cores.rtu import RTU

__all__ = [
    "ELSTM",
    "ELSTMRTU",
    "GRU",
    "LSTM",
    "RHN",
    "RTU",
    "ElementwiseCore",
    "ElementwisePart",
    "ElementwiseTerms",
    "RecurrentCore",
]
