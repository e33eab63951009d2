"""Kronecker-factored RTRL (Mujika, Meier & Steger 2018) for Recurrent Highway Networks."""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

from agents.cores.base import RecurrentCore
from agents.cores.rhn import RHN, RHNLayerCache
from agents.rules.base import Rule
from agents.rules.signs import random_signs, safe_ratio_sqrt

__all__ = ["KFRTRL"]

#: bytes of Jacobians computed at once: steps are batched up to this, so that small N is not
#: bound by per-op overhead and large N does not hold a whole rollout of (B, N, N) products
BLOCK_BYTES = 2**24


class KFRTRL(Rule):
    """Unbiased rank-one Kronecker estimate of the RHN's sensitivity, per micro-layer l
    (docs/algorithms.md §5).

    Micro-layer l computes z = ŝ^{l-1} W^l followed by element-wise maps, so
    ∂h_t/∂W^l = ŝ^{l-1}_t ⊗ (P^l_t D^l_t), with D^l = [diag((1−f)(1−c²)), diag((s^{l-1}−c) f(1−f))]
    (N, 2N) and P^l = ∂s^d/∂s^l = J^d ⋯ J^{l+1}, J^l = ∂s^l/∂s^{l-1}. Keep G^l ≈ u^l ⊗ A^l:

        p₁ = sqrt(‖H_t A_{t-1}‖ / ‖u_{t-1}‖),   p₂ = sqrt(‖P D‖ / ‖ŝ‖)       (Frobenius, per env)
        u_t = c₁ p₁ u_{t-1} + c₂ p₂ ŝ_t,         A_t = c₁/p₁ H_t A_{t-1} + c₂/p₂ P D
        ∂L/∂W^l += Σ_b u_b ⊗ (e_bᵀ A_b)          (never building the Kronecker product)

    with H_t = J^d ⋯ J^1 the whole step's Jacobian and c₁, c₂ fresh independent ±1 per environment
    per step. After a reset (u = 0) the update gives u ⊗ A = ŝ ⊗ P D exactly. O(d N³) per step.

    Only the product u ⊗ A is the estimate, and only c = c₁c₂ enters it. Most steps therefore
    store the same product split as
        u_t = u_{t-1} + c p₂/p₁ ŝ_t,             A_t = H_t A_{t-1} + c p₁/p₂ P D
    which spares a pass over A (p₁/p₂ does not depend on the split). The last step of every block
    uses the first split (with c₁ = 1), which balances the two factors again.

    All layers are updated at once: the traces are stacked, ``A`` as (B, N, d, 2N) so that
    H_t [A¹ … A^d] is a single batched matmul, and ``u`` as (B, d, in₁) with layer l's ŝ (length
    in_l ≤ in₁) zero-padded. :meth:`factors` gives them per layer. What does not depend on the
    traces (the Jacobians, H, P, D, p₂) is computed for a block of steps at once.
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
        u = traces["u"]
        w_t = self._recurrent_weights()
        signs = random_signs((len(records), *u.shape[:2]), u, self.generator)  # c = c₁c₂, (M, B, d)
        per_step = 2 * self.core.depth * u.shape[0] * self.core.hidden_size**2 * u.element_size()
        block = max(1, BLOCK_BYTES // per_step)
        for start in range(0, len(records), block):
            stop = start + block
            local = self._local_terms(records[start:stop], keeps[start:stop], signs[start:stop], w_t)
            for i, step in enumerate(local):
                traces = _mix(traces, step, rebalance=i == len(local) - 1)
        return traces

    def _local_terms(
        self,
        records: list[list[RHNLayerCache]],
        keeps: Sequence[Tensor | None],
        signs: Tensor,
        w_t: Tensor,
    ) -> list[_KFStep]:
        """What T steps need besides the traces, computed for all T at once; signs: c, (T, B, d).
        A reset before step t zeroes row b of H_t (so H_t A_{t-1} = 0 there) and of u_{t-1}: no
        pass over A per step."""
        steps, (batch, depth), n = len(records), signs.shape[1:], self.core.hidden_size
        f, dcf = _gate_derivatives(records)  # (d, T, B, N), (d, T, B, 2, N)
        # J^l = diag(f) + diag(d_c) W_cᵀ + diag(d_f) W_fᵀ, (d, T·B, N, N): layer first, so each
        # J^l is contiguous for bmm
        jac = dcf[..., 0, :, None] * w_t[:, None, None, 0]
        jac.addcmul_(dcf[..., 1, :, None], w_t[:, None, None, 1])
        jac.diagonal(dim1=-2, dim2=-1).add_(f)
        jac = jac.view(depth, steps * batch, n, n)
        # P^l for l = d..1 (P^d = I, kept as None), and H = J^d ⋯ J^1 = P^0.
        sens_to_out: list[Tensor | None] = [None] * depth
        h_jac = jac[-1]
        for layer in reversed(range(depth - 1)):
            sens_to_out[layer] = h_jac
            h_jac = torch.bmm(h_jac, jac[layer])
        # ‖P D‖² = Σ_j ‖P[:, j]‖² (d_c[j]² + d_f[j]²); P D is never built (two scaled copies of P)
        pd_sq = (dcf * dcf).sum(-2)  # (d, T, B, N), times the column norms where P ≠ I
        for layer, p in enumerate(sens_to_out[:-1]):
            pd_sq[layer] *= (p * p).sum(1).view(steps, batch, n)
        if keeps[0] is not None:
            h_jac.view(steps, batch, n * n).mul_(torch.stack(keeps)[..., None])
        s_hat = _stacked_inputs(records)  # (T, B, d, in₁)
        p_2 = safe_ratio_sqrt(pd_sq.sum(-1).sqrt().permute(1, 2, 0), torch.linalg.vector_norm(s_hat, dim=3))
        h_jac = h_jac.view(steps, batch, n, n)
        ps = [p.view(steps, batch, n, n) for p in sens_to_out[:-1]]
        c2_over_p2, c2_p2 = signs / p_2, signs * p_2  # with c₁ = 1 and c₂ = c (see _mix)
        d = dcf.unbind(1)
        return [
            _KFStep(
                keep=keeps[t],
                h=h_jac[t],
                s_hat=s_hat[t],
                d=d[t],
                p=[p[t] for p in ps],
                c2_over_p2=c2_over_p2[t],
                c2_p2=c2_p2[t],
            )
            for t in range(steps)
        ]


class _KFStep(NamedTuple):
    """One step's terms that do not depend on the traces."""

    keep: Tensor | None  # (B,): 0 where the state was reset before this step
    h: Tensor  # H_t = J^d ⋯ J^1, (B, N, N)
    s_hat: Tensor  # ŝ per layer, (B, d, in₁)
    d: Tensor  # [d_c, d_f] per layer: D's diagonals, (d, B, 2, N)
    p: list[Tensor]  # P^l for l < d, each (B, N, N); P^d = I
    c2_over_p2: Tensor  # c₂/p₂ with c₂ = c, (B, d)
    c2_p2: Tensor  # c₂ p₂ with c₂ = c, (B, d)


def _mix(traces: dict[str, Tensor], step: _KFStep, rebalance: bool) -> dict[str, Tensor]:
    """One step of the trace update (see KFRTRL), in the balanced split if ``rebalance``:

        u_t = c₁ p₁ u_{t-1} + c₂ p₂ ŝ_t,    A_t = c₁/p₁ H_t A_{t-1} + c₂/p₂ P D

    Only c = c₁c₂ enters u ⊗ A. The balanced split takes c₁ = 1, c₂ = c. The cheap one moves p₁
    from A into u (u_t/p₁ ⊗ p₁A_t is the same product) and so never scales A by 1/p₁:

        u_t = u_{t-1} + c₂ p₂/p₁ ŝ_t,       A_t = H_t A_{t-1} + c₂ p₁/p₂ P D
    """
    u, a = traces["u"], traces["A"]
    if step.keep is not None:  # A's reset rows are zeroed through H
        u = u * step.keep[:, None, None]
    h_a = torch.bmm(step.h, a.flatten(2)).view_as(a)  # H_t A_{t-1}, every layer: the O(N³) floor
    p_1 = safe_ratio_sqrt(_layer_norms(h_a), torch.linalg.vector_norm(u, dim=2))  # (B, d)
    if rebalance:
        # u_t = c₁ p₁ u_{t-1} + c₂ p₂ ŝ_t
        u_new = torch.addcmul(step.c2_p2[..., None] * step.s_hat, u, p_1[..., None])
        c1_over_p1_h_a = h_a.div_(p_1[:, None, :, None])  # c₁/p₁ H_t A_{t-1}, in place
        c2_over_p2 = step.c2_over_p2
    else:
        # u_t = u_{t-1} + c₂ p₂/p₁ ŝ_t
        u_new = torch.addcmul(u, step.s_hat, (step.c2_p2 / p_1)[..., None])
        c1_over_p1_h_a = h_a  # times p₁, which u_t took
        c2_over_p2 = step.c2_over_p2 * p_1  # times p₁ likewise
    # A_t = c₁/p₁ H_t A_{t-1} + c₂/p₂ P D, the second term added in place to the first
    a_new = _add_scaled_pd_(c1_over_p1_h_a, step.p, step.d, c2_over_p2)
    return {"u": u_new, "A": a_new}


def _add_scaled_pd_(a: Tensor, p: Sequence[Tensor], d: Tensor, scale: Tensor) -> Tensor:
    """a += scale · P D for every layer, in place; returns a.

    a: stacked traces (B, N, d, 2N); p: P^l for l < d, each (B, N, N) (P^d = I); d: D's diagonals
    [d_c, d_f] per layer, (d, B, 2, N); scale: (B, d). P^l D^l = [P^l diag(d_c), P^l diag(d_f)]
    scales P's columns, so it is never built as a matrix product: P^d D^d = D^d puts d_c and d_f on
    the diagonals of its two N × N blocks.
    """
    blocks = a.view(a.shape[0], a.shape[1], a.shape[2], 2, a.shape[1])  # [:, i, l, k, j] = A^l[i, k N + j]
    blocks[:, :, -1].diagonal(dim1=1, dim2=3).addcmul_(d[-1], scale[:, -1, None, None])  # P^d = I
    for layer, p_l in enumerate(p):
        blocks[:, :, layer].addcmul_(p_l[:, :, None, :], (scale[:, layer, None, None] * d[layer])[:, None])
    return a


def _layer_norms(a: Tensor) -> Tensor:
    """‖A^l‖ per env and layer of a stacked (B, N, d, 2N) trace, (B, d)."""
    if a.shape[2] == 1:
        return torch.linalg.vector_norm(a.view(a.shape[0], -1), dim=1)[:, None]
    # norms of row norms: a strided (1, 3) reduction is ~10× slower
    return torch.linalg.vector_norm(torch.linalg.vector_norm(a, dim=3), dim=1)


def _gate_derivatives(records: list[list[RHNLayerCache]]) -> tuple[Tensor, Tensor]:
    """f, and [∂s^l/∂z_c, ∂s^l/∂z_f] = (1 − f) [(1 − c²), (s^{l-1} − c) f], per layer and step:
    (d, T, B, N) and (d, T, B, 2, N)."""
    steps, depth = len(records), len(records[0])
    f, c, s_prev = (
        torch.stack([getattr(step[layer], name) for layer in range(depth) for step in records]).unflatten(
            0, (depth, steps)
        )
        for name in ("f", "c", "s_prev")
    )
    return f, (1 - f)[..., None, :] * torch.stack([1 - c * c, (s_prev - c) * f], -2)


def _stacked_inputs(records: list[list[RHNLayerCache]]) -> Tensor:
    """Each layer's ŝ^{l-1}, zero-padded to the first layer's length, (T, B, d, in₁)."""
    per_layer = [torch.stack([step[layer].s_hat for step in records]) for layer in range(len(records[0]))]
    if len(per_layer) == 1:
        return per_layer[0][:, :, None]
    out = per_layer[0].new_zeros(*per_layer[0].shape[:2], len(per_layer), per_layer[0].shape[2])
    for layer, s_hat in enumerate(per_layer):
        out[:, :, layer, : s_hat.shape[2]] = s_hat
    return out
