"""Kronecker-factored RTRL (Mujika, Meier & Steger 2018) for Recurrent Highway Networks."""

from __future__ import annotations

import torch
from torch import Tensor

from agents.cores.base import RecurrentCore
from agents.cores.rhn import RHN, RHNLayerCache
from agents.rules.base import Rule
from agents.rules.signs import random_signs, safe_ratio_sqrt

__all__ = ["KFRTRL"]


class KFRTRL(Rule):
    """Unbiased rank-one Kronecker estimate of the RHN's sensitivity, per micro-layer l.

    Micro-layer l computes z = ŝ^{l-1} W^l followed by element-wise maps, so
    ∂h_t/∂W^l = ŝ^{l-1}_t ⊗ (P^l_t D^l_t), with D^l = [diag((1−f)(1−c²)), diag((s^{l-1}−c) f(1−f))]
    (N, 2N) and P^l = ∂s^d/∂s^l = J^d ⋯ J^{l+1}, J^l = ∂s^l/∂s^{l-1}. Keep G^l ≈ u^l ⊗ A^l:

        p₁ = sqrt(‖H_t A_{t-1}‖ / ‖u_{t-1}‖),   p₂ = sqrt(‖P D‖ / ‖ŝ‖)       (Frobenius, per env)
        u_t = c₁ p₁ u_{t-1} + c₂ p₂ ŝ_t,         A_t = c₁/p₁ H_t A_{t-1} + c₂/p₂ P D
        ∂L/∂W^l += Σ_b u_b ⊗ (e_bᵀ A_b)          (never building the Kronecker product)

    with H_t = J^d ⋯ J^1 the whole step's Jacobian and c₁, c₂ fresh independent ±1 per environment
    per step. After a reset (u = 0) the update gives u ⊗ A = ŝ ⊗ P D exactly. O(d N³) per step.

    All layers are updated at once: the traces are stacked, ``A`` as (B, N, d, 2N) so that
    H_t [A¹ … A^d] is a single batched matmul, and ``u`` as (B, d, in₁) with layer l's ŝ (length
    in_l ≤ in₁) zero-padded. :meth:`factors` gives them per layer.
    """

    def __init__(self, core: RecurrentCore, generator: torch.Generator | None = None) -> None:
        if not isinstance(core, RHN):
            raise TypeError(
                f"KFRTRL supports RHN cores only, got {type(core).__name__}; "
                "use RTRL for ELSTM and RTU, and UORO or TBPTT for any core"
            )
        super().__init__(core)
        self.generator = generator

    def factors(self, traces: dict[str, Tensor]) -> list[tuple[Tensor, Tensor]]:
        """(u^l (B, in_l), A^l (B, N, 2N)) per micro-layer: G^l[b, j, (i, k)] ≈ u^l[b, i] A^l[b, j, k]."""
        return [
            (traces["u"][:, layer, : w.shape[0]], traces["A"][:, :, layer])
            for layer, w in enumerate(self.core.weights)
        ]

    def _initial_traces(self, batch_size: int) -> dict[str, Tensor]:
        ref = self.core.initial_state(batch_size)
        n, d = self.core.hidden_size, self.core.depth
        in_first = self.core.weights[0].shape[0]
        return {"u": ref.new_zeros(batch_size, d, in_first), "A": ref.new_zeros(batch_size, n, d, 2 * n)}

    def _carried_grads(self, traces: dict[str, Tensor], grad_state: Tensor) -> list[Tensor]:
        a = traces["A"]
        v = torch.bmm(grad_state[:, None, :], a.flatten(2)).view(a.shape[0], a.shape[2], -1)  # e_bᵀ A_b
        return [u.T @ v[:, layer] for layer, (u, _) in enumerate(self.factors(traces))]  # Σ_b u_b ⊗ v_b

    def _forward(self, x: Tensor, state: Tensor):
        h, caches = self.core.cell(x, state)
        return h, h, [RHNLayerCache(*(t.detach() for t in c)) for c in caches]

    def _recurrent_weights(self) -> Tensor:
        """[W_cᵀ, W_fᵀ] of every layer, (d, 2, N, N): the rows of W^l that see s^{l-1}, transposed."""
        n = self.core.hidden_size
        w_s = torch.stack([w[-1 - n : -1] for w in self.core.weights]).detach()  # (d, N, 2N)
        return w_s.view(-1, n, 2, n).permute(0, 2, 3, 1).contiguous()

    def _advance(self, traces, records, keeps):
        w_t = self._recurrent_weights()
        for caches, keep in zip(records, keeps, strict=True):
            if keep is not None:
                traces = {k: v * keep.view(-1, *([1] * (v.dim() - 1))) for k, v in traces.items()}
            traces = self._kf_step(traces, caches, w_t)
        return traces

    def _kf_step(
        self, traces: dict[str, Tensor], caches: list[RHNLayerCache], w_t: Tensor
    ) -> dict[str, Tensor]:
        u, a = traces["u"], traces["A"]
        batch, n, depth = a.shape[0], a.shape[1], a.shape[2]
        f, dcf = _gate_derivatives(caches)  # (d, B, N), (d, B, 2, N)
        # J^l = diag(f) + diag(d_c) W_cᵀ + diag(d_f) W_fᵀ, (d, B, N, N): layer first, so each J^l
        # is contiguous for bmm
        jac = dcf[:, :, 0, :, None] * w_t[:, None, 0]
        jac.addcmul_(dcf[:, :, 1, :, None], w_t[:, None, 1])
        jac.diagonal(dim1=2, dim2=3).add_(f)
        # P^l for l = d..1 (P^d = I, kept as None), and H = J^d ⋯ J^1 = P^0.
        sens_to_out: list[Tensor | None] = [None] * depth
        h_jac = jac[-1]
        for layer in reversed(range(depth - 1)):
            sens_to_out[layer] = h_jac
            h_jac = torch.bmm(h_jac, jac[layer])
        # ‖P D‖² = Σ_j ‖P[:, j]‖² (d_c[j]² + d_f[j]²); P D is never built (two scaled copies of P)
        pd_sq = (dcf * dcf).sum(2)  # (d, B, N), times the column norms where P ≠ I
        for layer, p in enumerate(sens_to_out[:-1]):
            pd_sq[layer] *= (p * p).sum(1)
        ha = torch.bmm(h_jac, a.flatten(2)).view_as(a)  # H_t A_{t-1}, every layer: the O(N³) floor
        # per-layer Frobenius norms as norms of row norms: a strided (1, 3) reduction is ~10× slower
        ha_norm = torch.linalg.vector_norm(torch.linalg.vector_norm(ha, dim=3), dim=1)  # (B, d)
        s_hat = _stacked_inputs(caches, u)  # (B, d, in₁)
        p = safe_ratio_sqrt(
            torch.stack([ha_norm, pd_sq.sum(2).sqrt().T]),
            torch.stack([torch.linalg.vector_norm(u, dim=2), torch.linalg.vector_norm(s_hat, dim=2)]),
        )  # [p₁, p₂], (2, B, d)
        c = random_signs(p.shape, u, self.generator)  # [c₁, c₂]
        cp = c * p
        u_new = torch.addcmul(u * cp[0, ..., None], cp[1, ..., None], s_hat)
        coef = c / p
        a_new = ha.mul_(coef[0, :, None, :, None])  # c₁/p₁ H A, then + c₂/p₂ P D:
        scaled_d = coef[1].T[..., None, None] * dcf  # (d, B, 2, N)
        blocks = a_new.view(batch, n, depth, 2, n)  # [:, i, l, k, j] = A^l[i, k N + j]
        blocks[:, :, -1].diagonal(dim1=1, dim2=3).add_(scaled_d[-1])  # P = I: the diagonals
        for layer, p_l in enumerate(sens_to_out[:-1]):
            blocks[:, :, layer].addcmul_(p_l[:, :, None, :], scaled_d[layer, :, None])
        return {"u": u_new, "A": a_new}


def _gate_derivatives(caches: list[RHNLayerCache]) -> tuple[Tensor, Tensor]:
    """f, and [∂s^l/∂z_c, ∂s^l/∂z_f] = (1 − f) [(1 − c²), (s^{l-1} − c) f], per layer:
    (d, B, N) and (d, B, 2, N)."""
    f, c, s_prev = (torch.stack(t) for t in zip(*[(k.f, k.c, k.s_prev) for k in caches], strict=True))
    return f, (1 - f)[:, :, None] * torch.stack([1 - c * c, (s_prev - c) * f], 2)


def _stacked_inputs(caches: list[RHNLayerCache], like: Tensor) -> Tensor:
    """Each layer's ŝ^{l-1}, zero-padded to the first layer's length, (B, d, in₁)."""
    if len(caches) == 1:
        return caches[0].s_hat[:, None]
    out = like.new_zeros(like.shape)
    for layer, cache in enumerate(caches):
        out[:, layer, : cache.s_hat.shape[1]] = cache.s_hat
    return out
