"""Exact real-time recurrent learning (Williams & Zipser 1989)."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torch.func import jacrev, vmap

from agents.cores.base import ElementwiseCore, ElementwiseTerms, RecurrentCore
from agents.rules.base import Rule, functional_state_step

__all__ = ["RTRL"]

#: the dense path refuses sensitivities larger than this many elements (B·S·|θ|)
DENSE_LIMIT = 2**27


class RTRL(Rule):
    """Exact RTRL: carries G_t = ds_t/dθ forward, so the gradient is that of full BPTT.

    Element-wise cores (ELSTM, RTU), ``method="elementwise"``; docs/algorithms.md §1–3. With
    ∂c_t/∂c_{t-1} = diag(a_t), each recurrent matrix P (K, D) and vector w (K,) keeps
        S^P_t = a_t ⊙ S^P_{t-1} + coef^P_t ⊗ x_t       (B, K, D)
        s^w_t = a_t ⊙ s^w_{t-1} + coef^w_t             (B, K)
    i.e. sensitivities exactly the size of θ per environment. Over a chunk of M steps (the
    hybrid, §2), with ã_t = a_t · keep_t (0 after a reset), the carry is one batched matmul:
        S_M = (Π_t ã_t) ⊙ S_0 + Σ_t (Π_{s>t} ã_s ⊙ coef_t) ⊗ x_t        ((B,K,M) @ (B,M,D))
    In complex coordinates (RTU) the parameter gradient is Re(Σ_b conj(e_b) · S_b). A core made
    of parts side by side (ELSTMRTU, ``core.parts()``) has a block-diagonal ∂s_t/∂s_{t-1}, each
    block diagonal in its part's own coordinates: all of the above runs per part (eLSTM's traces
    real, RTU's complex), and the carried gradient is the sum of the parts' contractions.

    Any core, ``method="dense"``; §4: G_t = H_t G_{t-1} + F_t, H_t = ∂s_t/∂s_{t-1} (B, S, S),
    F_t = ∂s_t/∂θ (B, S, |θ|), from torch.func Jacobians. O(S²·|θ|) per step: the reference
    for small cores and for the approximations.

    ``method="auto"`` picks the element-wise path when the core has one.
    """

    def __init__(self, core: RecurrentCore, method: str = "auto") -> None:
        super().__init__(core)
        if method == "auto":
            method = "elementwise" if isinstance(core, ElementwiseCore) else "dense"
        if method not in ("elementwise", "dense"):
            raise ValueError(f"RTRL method must be 'auto', 'elementwise' or 'dense', got {method!r}")
        if method == "elementwise" and not isinstance(core, ElementwiseCore):
            raise TypeError(
                f"RTRL's element-wise path supports ELSTM, RTU and ELSTMRTU, not {type(core).__name__}; "
                "use method='dense' (small cores), KFRTRL (RHN), UORO or TBPTT"
            )
        self.method = method
        self.chunks_on_core = method == "elementwise"
        #: the blocks of the state exact RTRL works on, each in its own diagonal coordinates
        self.parts = core.parts() if method == "elementwise" else ()
        self._state_step = functional_state_step(core)

    # --- traces ---------------------------------------------------------------------------
    def _initial_traces(self, batch_size: int) -> dict[str, Tensor]:
        state = self.core.initial_state(batch_size)
        if self.method == "dense":
            n_params = sum(p.numel() for p in self.params.values())
            size = batch_size * state.shape[1] * n_params
            if size > DENSE_LIMIT:
                raise ValueError(
                    f"dense RTRL on {type(self.core).__name__} needs a {batch_size}x"
                    f"{state.shape[1]}x{n_params} sensitivity ({size:,} numbers); use a smaller "
                    "core, an element-wise core (ELSTM, RTU), KFRTRL (RHN), UORO or TBPTT"
                )
            return {"G": state.new_zeros(batch_size, state.shape[1], n_params)}
        traces = {}
        for part in self.parts:
            diag = part.core.to_diagonal(state[:, part.state])  # (B, K), real or complex
            for name, p in part.core.recurrent_parameters().items():
                traces[part.prefix + name] = diag.new_zeros(batch_size, *p.shape)
        return traces

    def _carried_grads(self, traces: dict[str, Tensor], grad_state: Tensor) -> list[Tensor]:
        if self.method == "dense":
            flat = torch.einsum("bs,bsp->p", grad_state, traces["G"])
            return list(_unflatten(flat, self.params.values()))
        grads = {}
        for part in self.parts:
            e = part.core.to_diagonal(grad_state[:, part.state]).conj()  # (B, K)
            for local in part.core.recurrent_parameters():
                name = part.prefix + local
                s = traces[name]
                if s.dim() == 2:
                    grads[name] = (e * s).sum(0).real
                    continue
                # Σ_b e[b, :, None] ⊙ S[b]: B fused multiply-adds into one (K, D) buffer; an einsum
                # here would copy S into a batched-matmul layout first.
                g = s[0] * e[0, :, None]
                for b in range(1, s.shape[0]):
                    g.addcmul_(s[b], e[b, :, None])
                grads[name] = g.real
        return [grads[name] for name in self.params]

    # --- forward and advance --------------------------------------------------------------
    def _forward(self, x: Tensor, state: Tensor):
        if self.method == "dense":
            return super()._forward(x, state)
        return self.core.step_with_record(x, state)

    def _advance(self, traces, records, keeps):
        if self.method == "dense":
            return self._advance_dense(traces, records, keeps)
        return self._advance_elementwise(traces, records, keeps)

    def _advance_elementwise(
        self,
        traces: dict[str, Tensor],
        records: list[tuple[Tensor, ...]],
        keeps: Sequence[Tensor | None],
    ) -> dict[str, Tensor]:
        # records: the chunk's fields stacked, (M, B, ·) (per part for a core made of parts), and
        # keeps: [(M, B) or None] (Rule.run): the local derivatives of all M steps at once
        record = tuple(records)
        keep = keeps[0]
        new = {}
        for part in self.parts:
            terms = part.core.local_terms(record if part.record is None else record[part.record])
            mine = {n: traces[part.prefix + n] for n in terms.coef}
            new.update(_advance_part(terms, mine, keep, part.prefix))
        return new

    def _advance_dense(self, traces, records, keeps):
        def row_step(params: dict[str, Tensor], x: Tensor, state: Tensor) -> Tensor:
            return self._state_step(params, x[None], state[None])[0]

        jac = vmap(jacrev(row_step, argnums=(0, 2)), in_dims=(None, 0, 0))
        g = traces["G"]
        params = dict(self.params)
        for (x, state), keep in zip(records, keeps, strict=True):
            if keep is not None:
                g = g * keep[:, None, None]
            f_params, h = jac(params, x, state)  # dict of (B, S, *shape), (B, S, S)
            f = torch.cat([f_params[n].flatten(2) for n in self.params], dim=2)
            g = torch.baddbmm(f, h, g)
        return {"G": g}


def _advance_part(
    terms: ElementwiseTerms, traces: dict[str, Tensor], keep: Tensor | None, prefix: str = ""
) -> dict[str, Tensor]:
    """One part's traces (named as in ``terms``) after the chunk whose terms are (M, B, ·); the
    result's names carry ``prefix``. keep (M, B) is 0 where the state was reset before step t."""
    a = terms.a  # (M, B, K)
    if keep is not None:
        a = a * keep[:, :, None]
    # suffix[t] = Π_{s>t} ã_s ; total = Π_t ã_t
    through = torch.cumprod(a.flip(0), dim=0).flip(0)  # (M, B, K): Π_{s≥t} ã_s
    # Products that decayed below sqrt(smallest normal) carry no credit worth keeping; left
    # alone they become subnormal, which made the matmul below ~10x slower on CPU.
    tiny = torch.finfo(through.real.dtype).tiny ** 0.5
    through = through.masked_fill(through.abs() < tiny, 0)
    total = through[0]
    suffix = torch.cat([through[1:], torch.ones_like(total)[None]])
    # Parameters often share a coefficient (F and b_f share φ) or an input (F and Z share
    # x): stack and weight each distinct tensor once.
    weighted_of: dict[int, Tensor] = {}
    inputs_of: dict[int, Tensor] = {}
    new = {}
    for name, s0 in traces.items():
        coef, x = terms.coef[name], terms.inputs[name]
        if id(coef) not in weighted_of:
            weighted_of[id(coef)] = suffix * coef
        weighted = weighted_of[id(coef)]  # (M, B, K): Π_{s>t} ã_s ⊙ coef_t
        if x is None:
            new[prefix + name] = (total * s0).add_(weighted.sum(0))
            continue
        if id(x) not in inputs_of:
            inputs_of[id(x)] = x.transpose(0, 1).to(a.dtype)  # (B, M, D)
        # S_M = total ⊙ S_0 + (B, K, M) @ (B, M, D), accumulated in the new buffer
        new[prefix + name] = (total[..., None] * s0).baddbmm_(weighted.permute(1, 2, 0), inputs_of[id(x)])
    return new


def _unflatten(flat: Tensor, like):
    i = 0
    for p in like:
        yield flat[i : i + p.numel()].view_as(p)
        i += p.numel()
