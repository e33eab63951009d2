"""eLSTM and RTU units side by side: one element-wise core whose state is both parts' states."""

from __future__ import annotations

import torch
from torch import Tensor

from agents.cores.base import ElementwiseCore, ElementwisePart, ElementwiseTerms
from agents.cores.elstm import ELSTM
from agents.cores.rtu import RTU

__all__ = ["ELSTMRTU"]


class ELSTMRTU(ElementwiseCore):
    """N_e eLSTM units and N_r RTU units (N_r/2 complex), reading the same x_t:

        c^e_t, out^e_t = eLSTM(x_t, c^e_{t-1})       (agents/cores/elstm.py; real, N_e units)
        c^r_t, out^r_t = RTU(x_t, c^r_{t-1})         (agents/cores/rtu.py; complex, N_r/2 units)
        s_t = [c^e_t; c^r_t],   out_t = [out^e_t; out^r_t]         N = N_e + N_r

    Neither part reads the other's state or owns the other's parameters, so

        ∂s_t/∂s_{t-1} = blockdiag(diag(a^e_t), R(λ))   and   ∂c^e/∂θ^r = ∂c^r/∂θ^e = 0.

    The sensitivity of the concatenation is therefore the two parts' sensitivities side by side,
    and the gradient the rule carries in is a sum over the parts, each in its own coordinates:

        Σ_b (dL/ds_0)[b] · G_0[b] = Σ_b e^e_b · S^e_b  +  Re Σ_b conj(e^r_b) · S^r_b

    with e^e = dL/dc^e real and e^r = to_diagonal(dL/dc^r) = dL/dc¹ + i dL/dc² complex. Exact
    RTRL (agents/rules/rtrl.py) works on ``parts()``: the eLSTM traces stay real and the RTU's
    complex, so the eLSTM part costs what a plain eLSTM of N_e units costs. (Putting the eLSTM
    units in complex coordinates with zero imaginary part would also be exact, at twice the trace
    memory and four times the multiply work for them.) ``to_diagonal`` and ``local_terms`` of the
    whole core are not defined: a rule asks each part.

    hidden_size N = N_e + N_r; ``rtu_size`` = N_r must be even (default: N/2 rounded down to an
    even number, so N = 128 gives 64 eLSTM units and 32 complex RTU units). Each part is
    initialised as on its own (``forget_bias`` is the eLSTM part's, as in agents/cores/elstm.py).
    Parameters are named ``elstm.*`` and ``rtu.*``.
    """

    def __init__(
        self, input_size: int, hidden_size: int, rtu_size: int | None = None, forget_bias: float = 2.0
    ) -> None:
        rtu_size = 2 * (hidden_size // 4) if rtu_size is None else rtu_size
        elstm_size = hidden_size - rtu_size
        if rtu_size < 2 or rtu_size % 2 or elstm_size < 1:
            raise ValueError(
                f"ELSTMRTU splits hidden_size={hidden_size} into eLSTM units and rtu_size RTU units: "
                f"rtu_size must be even, >= 2 and < hidden_size, got {rtu_size}"
            )
        super().__init__(input_size, hidden_size, state_size=hidden_size)
        self.elstm = ELSTM(input_size, elstm_size, forget_bias)
        self.rtu = RTU(input_size, rtu_size)
        self.sizes = (elstm_size, rtu_size)
        self.readout_parameter_names = tuple(
            f"{name}.{p}" for name, part in self.named_children() for p in part.readout_parameter_names
        )

    def parts(self) -> tuple[ElementwisePart, ...]:
        n_e = self.sizes[0]
        return (
            ElementwisePart("elstm.", self.elstm, slice(0, n_e), 0),
            ElementwisePart("rtu.", self.rtu, slice(n_e, None), 1),
        )

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        out, new, _ = self.step_with_record(x, state)
        return out, new

    def step_with_record(
        self, x: Tensor, state: Tensor
    ) -> tuple[Tensor, Tensor, tuple[tuple[Tensor, ...], ...]]:
        """The record is (eLSTM's record, RTU's record): ``parts()`` says which is whose."""
        c_e, c_r = state.split(self.sizes, dim=-1)  # (B, N_e), (B, N_r)
        out_e, new_e, rec_e = self.elstm.step_with_record(x, c_e)
        out_r, new_r, rec_r = self.rtu.step_with_record(x, c_r)
        return torch.cat([out_e, out_r], dim=-1), torch.cat([new_e, new_r], dim=-1), (rec_e, rec_r)

    def unroll_chunk(
        self, xs: Tensor, state: Tensor, keeps: Tensor | None = None, record: bool = True
    ) -> tuple[Tensor, Tensor, tuple]:
        """Each part's own chunked unroll (eLSTM's fast one among them), side by side."""
        c_e, c_r = state.split(self.sizes, dim=-1)
        out_e, end_e, rec_e = self.elstm.unroll_chunk(xs, c_e, keeps, record)
        out_r, end_r, rec_r = self.rtu.unroll_chunk(xs, c_r, keeps, record)
        ends = torch.cat([end_e, end_r], dim=-1)
        return torch.cat([out_e, out_r], dim=-1), ends, ((rec_e, rec_r) if record else ())

    def local_terms(self, record: tuple[Tensor, ...]) -> ElementwiseTerms:
        raise TypeError("ELSTMRTU is made of parts with different diagonal coordinates: use parts()")

    def to_diagonal(self, state_like: Tensor) -> Tensor:
        raise TypeError("ELSTMRTU is made of parts with different diagonal coordinates: use parts()")
