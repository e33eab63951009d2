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

    State: c, (B, N). Weights are initialised N(0, 0.1) as in the paper; biases at zero, except
    b_f at ``forget_bias`` (default 2; the paper's is 0): f ≈ σ(b_f) keeps c for ~1/(1 − σ(b_f))
    steps at the start, ~8 at 2 against 2 at 0, the forget-gate bias of Gers et al. 2000 and
    Jozefowicz et al. 2015 (configs/core/elstm.yaml gives the evidence for 2).
    """

    readout_parameter_names = ("W_o", "b_o")

    def __init__(self, input_size: int, hidden_size: int, forget_bias: float = 2.0) -> None:
        super().__init__(input_size, hidden_size, state_size=hidden_size)
        n, d = hidden_size, input_size
        self.F = nn.Parameter(torch.randn(n, d) * 0.1)
        self.Z = nn.Parameter(torch.randn(n, d) * 0.1)
        self.w_f = nn.Parameter(torch.randn(n) * 0.1)
        self.w_z = nn.Parameter(torch.randn(n) * 0.1)
        self.b_f = nn.Parameter(torch.full((n,), float(forget_bias)))
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

    def unroll_chunk(
        self, xs: Tensor, state: Tensor, keeps: Tensor | None = None, record: bool = True
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """The chunk in three parts, equal to the step loop (``ElementwiseCore.unroll_chunk``):
        the input projections F x_t + b_f and Z x_t + b_z of all M steps in one matmul each, the
        cell recurrence as one autograd node (``_CellRecurrence``: its loop runs without building a
        graph, and its backward is written out), and the readout of all steps in one matmul."""
        u_f = F.linear(xs, self.F, self.b_f)  # (M, B, N)
        u_z = F.linear(xs, self.Z, self.b_z)
        if keeps is None:
            keeps = xs.new_ones(xs.shape[:2])
        cs, c_prev, f, z = _CellRecurrence.apply(u_f, u_z, self.w_f, self.w_z, state, keeps)
        outs = self._readout(xs, cs)
        return outs, cs[-1], ((xs.detach(), c_prev, f, z) if record else ())

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


class _CellRecurrence(torch.autograd.Function):
    """eLSTM's cell over a chunk, with u^f_t = F x_t + b_f and u^z_t = Z x_t + b_z given and
    c̃_{t-1} = keep_t ⊙ c_{t-1} (0 after a reset):

        f_t = σ(u^f_t + w_f ⊙ c̃_{t-1}),  z_t = tanh(u^z_t + w_z ⊙ c̃_{t-1}),
        c_t = f_t ⊙ c̃_{t-1} + (1 − f_t) ⊙ z_t

    Backward, from g_t = dL/dc_t (its own gradient plus what c_{t+1} sends back), t = M … 1:

        ∂u^f_t = g_t ⊙ (c̃_{t-1} − z_t) ⊙ f_t ⊙ (1 − f_t),   ∂u^z_t = g_t ⊙ (1 − f_t) ⊙ (1 − z_t²)
        ∂w_f += Σ_b ∂u^f_t ⊙ c̃_{t-1},                       ∂w_z += Σ_b ∂u^z_t ⊙ c̃_{t-1}
        dL/dc_{t-1} = keep_t ⊙ (g_t ⊙ f_t + ∂u^f_t ⊙ w_f + ∂u^z_t ⊙ w_z)

    Returns (c_t, c̃_{t-1}, f_t, z_t) stacked over the chunk, (M, B, N) each; the last three are
    the records of exact RTRL's trace advance and carry no gradient.
    """

    @staticmethod
    def forward(ctx, u_f, u_z, w_f, w_z, c, keeps):
        cs, c_prev, fs, zs = [], [], [], []
        for t in range(u_f.shape[0]):
            c = c * keeps[t][:, None]
            f = torch.sigmoid(u_f[t] + w_f * c)
            z = torch.tanh(u_z[t] + w_z * c)
            c_prev.append(c)
            c = f * c + (1 - f) * z
            cs.append(c)
            fs.append(f)
            zs.append(z)
        out = tuple(torch.stack(v) for v in (cs, c_prev, fs, zs))
        ctx.save_for_backward(w_f, w_z, keeps, *out[1:])
        ctx.mark_non_differentiable(*out[1:])
        return out

    @staticmethod
    def backward(ctx, grad_cs, *_):
        w_f, w_z, keeps, c_prev, fs, zs = ctx.saved_tensors
        d_uf, d_uz = torch.empty_like(fs), torch.empty_like(zs)
        carry = torch.zeros_like(grad_cs[0])
        for t in reversed(range(fs.shape[0])):
            g, f, z = grad_cs[t] + carry, fs[t], zs[t]
            d_uf[t] = g * (c_prev[t] - z) * f * (1 - f)
            d_uz[t] = g * (1 - f) * (1 - z * z)
            carry = (g * f + d_uf[t] * w_f + d_uz[t] * w_z) * keeps[t][:, None]
        d_wf = (d_uf * c_prev).sum((0, 1))
        d_wz = (d_uz * c_prev).sum((0, 1))
        return d_uf, d_uz, d_wf, d_wz, carry, None
