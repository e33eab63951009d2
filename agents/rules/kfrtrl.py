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
    """

    def __init__(self, core: RecurrentCore, generator: torch.Generator | None = None) -> None:
        if not isinstance(core, RHN):
            raise TypeError(
                f"KFRTRL supports RHN cores only, got {type(core).__name__}; "
                "use RTRL for ELSTM and RTU, and UORO or TBPTT for any core"
            )
        super().__init__(core)
        self.generator = generator

    def _initial_traces(self, batch_size: int) -> dict[str, Tensor]:
        ref = self.core.initial_state(batch_size)
        n = self.core.hidden_size
        traces = {}
        for layer, w in enumerate(self.core.weights):
            traces[f"u{layer}"] = ref.new_zeros(batch_size, w.shape[0])
            traces[f"A{layer}"] = ref.new_zeros(batch_size, n, 2 * n)
        return traces

    def _carried_grads(self, traces: dict[str, Tensor], grad_state: Tensor) -> list[Tensor]:
        grads = []
        for layer in range(self.core.depth):
            v = torch.einsum("bj,bjk->bk", grad_state, traces[f"A{layer}"])  # e_bᵀ A_b, (B, 2N)
            grads.append(traces[f"u{layer}"].T @ v)  # Σ_b u_b ⊗ v_b, (in_l, 2N)
        return grads

    def _forward(self, x: Tensor, state: Tensor):
        h, caches = self.core.cell(x, state)
        record = (x.detach(), [RHNLayerCache(*(t.detach() for t in c)) for c in caches])
        return h, h, record

    def _advance(self, traces, records, keeps):
        traces = dict(traces)
        for (x, caches), keep in zip(records, keeps, strict=True):
            if keep is not None:
                traces = {k: v * keep.view(-1, *([1] * (v.dim() - 1))) for k, v in traces.items()}
            traces = self._kf_step(traces, x, caches)
        return traces

    def _layer_jacobian(self, layer: int, f: Tensor, d_c: Tensor, d_f: Tensor) -> Tensor:
        """J^l = ∂s^l/∂s^{l-1} = diag(f) + diag(d_c) W_cᵀ + diag(d_f) W_fᵀ, (B, N, N)."""
        n = self.core.hidden_size
        w_s = self.core.weights[layer][-1 - n : -1].detach()  # rows of W^l that see s^{l-1}
        jac = d_c[:, :, None] * w_s[:, :n].T
        jac.addcmul_(d_f[:, :, None], w_s[:, n:].T)
        jac.diagonal(dim1=1, dim2=2).add_(f)
        return jac

    def _kf_step(self, traces, x: Tensor, caches: list[RHNLayerCache]) -> dict[str, Tensor]:
        depth, n = self.core.depth, self.core.hidden_size
        derivs = [_gate_derivatives(c) for c in caches]
        jacs = [self._layer_jacobian(layer, c.f, *derivs[layer]) for layer, c in enumerate(caches)]
        # P^l for l = d..1 (P^d = I, kept as None), and H = J^d ⋯ J^1 = P^0.
        sens_to_out: list[Tensor | None] = [None] * depth
        prod = None
        for layer in reversed(range(depth)):
            sens_to_out[layer] = prod
            prod = jacs[layer] if prod is None else torch.bmm(prod, jacs[layer])
        h_jac = prod  # (B, N, N)
        new = {}
        for layer, cache in enumerate(caches):
            (d_c, d_f), p = derivs[layer], sens_to_out[layer]
            # ‖P D‖² = Σ_j ‖P[:, j]‖² (d_c[j]² + d_f[j]²); P D is never built (two scaled copies of P)
            d_sq = d_c * d_c + d_f * d_f
            col_sq = 1.0 if p is None else (p * p).sum(1)  # last micro-layer: P = I
            pd_norm = (col_sq * d_sq).sum(1).sqrt()
            u, s_hat = traces[f"u{layer}"], cache.s_hat
            ha = torch.bmm(h_jac, traces[f"A{layer}"])  # H_t A_{t-1}, (B, N, 2N): the O(N³) floor
            p1 = safe_ratio_sqrt(ha.flatten(1).norm(dim=1), u.norm(dim=1))  # (B,)
            p2 = safe_ratio_sqrt(pd_norm, s_hat.norm(dim=1))
            c1 = random_signs(p1.shape, u, self.generator)
            c2 = random_signs(p1.shape, u, self.generator)
            new[f"u{layer}"] = (c1 * p1)[:, None] * u + (c2 * p2)[:, None] * s_hat
            a_new = ha.mul_((c1 / p1)[:, None, None])  # A_t = c₁/p₁ H A + c₂/p₂ P D
            scale = (c2 / p2)[:, None]
            if p is None:
                a_new[:, :, :n].diagonal(dim1=1, dim2=2).add_(scale * d_c)
                a_new[:, :, n:].diagonal(dim1=1, dim2=2).add_(scale * d_f)
            else:
                a_new[:, :, :n].addcmul_(p, (scale * d_c)[:, None, :])
                a_new[:, :, n:].addcmul_(p, (scale * d_f)[:, None, :])
            new[f"A{layer}"] = a_new
        return new


def _gate_derivatives(cache: RHNLayerCache) -> tuple[Tensor, Tensor]:
    """∂s^l/∂z_c = (1 − f)(1 − c²) and ∂s^l/∂z_f = (s^{l-1} − c) f (1 − f), each (B, N)."""
    f, c = cache.f, cache.c
    return (1 - f) * (1 - c * c), (cache.s_prev - c) * f * (1 - f)
