"""The interface every recurrent core shares: one differentiable time step over a flat state."""

from __future__ import annotations

from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

__all__ = ["ElementwiseCore", "ElementwisePart", "ElementwiseTerms", "RecurrentCore"]


class RecurrentCore(nn.Module):
    """A recurrent cell advanced one time step at a time.

    The state is one tensor of shape (B, state_size), so that rules can reset, carry and
    differentiate it without knowing the core. ``out, state = core(x, state)`` is plain autograd:
    full BPTT or TBPTT is backprop over a loop of these calls.

    Attributes:
        input_size: D, the size of x.
        hidden_size: N, the size of out.
        state_size: S, the size of the carried state.
        readout_parameter_names: parameters that shape ``out`` but never the state; rules give
            them ordinary backprop and carry no sensitivity for them.
    """

    readout_parameter_names: tuple[str, ...] = ()

    def __init__(self, input_size: int, hidden_size: int, state_size: int) -> None:
        super().__init__()
        self.input_size = input_size
        self.hidden_size = hidden_size
        self.state_size = state_size

    def initial_state(self, batch_size: int) -> Tensor:
        """Zeros of shape (B, S), on the core's device and dtype."""
        p = next(self.parameters())
        return torch.zeros(batch_size, self.state_size, device=p.device, dtype=p.dtype)

    def recurrent_parameters(self) -> dict[str, nn.Parameter]:
        """The parameters the state depends on: those a rule must carry sensitivities for."""
        return {n: p for n, p in self.named_parameters() if n not in self.readout_parameter_names}

    def forward(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """One step. x: (B, D), state: (B, S) -> out: (B, N), state: (B, S)."""
        raise NotImplementedError


class ElementwiseTerms(NamedTuple):
    """One step's local derivatives of an element-wise core, in its diagonal coordinates.

    With K diagonal units (real for eLSTM, complex for RTU) and the state in those coordinates:
        ∂c_t/∂c_{t-1} = diag(a)                                   a: (B, K)
        ∂c_t/∂P |_(c_{t-1} fixed) = coef[P] ⊗ inputs[P]           for a matrix P: (K, D)
        ∂c_t/∂w |_(c_{t-1} fixed) = coef[w]                       for a vector w: (K,)
    ``inputs[name]`` is None for vector parameters. Leading dims may also include time, (M, B, ·).
    """

    a: Tensor
    coef: dict[str, Tensor]
    inputs: dict[str, Tensor | None]


class ElementwisePart(NamedTuple):
    """One block of an element-wise core's state, with its own diagonal coordinates.

    A plain element-wise core is one part: itself. A core made of parts side by side (ELSTMRTU)
    has one per part: ∂s_t/∂s_{t-1} is block-diagonal, and each block is diagonal in its part's
    coordinates (real or complex), so exact RTRL runs on each part as if it were alone.
    """

    prefix: str  # its parameters' names in the whole core start with this ("" for a plain core)
    core: ElementwiseCore  # the part's own core: to_diagonal, local_terms, recurrent_parameters
    state: slice  # its columns of the whole core's (B, S) state
    record: int | None  # its entry of the whole core's step record (None: the whole record)


class ElementwiseCore(RecurrentCore):
    """A core whose recurrence is diagonal, so that exact RTRL costs O(|θ|) per environment.

    Each unit's recurrence touches only its own rows of the recurrent parameters: the sensitivity
    of unit k is the size of the parameters that unit owns (Irie et al. 2023; Elelimy et al. 2024).

    The local derivatives are split in two so that a chunk of M steps pays for them once:
    ``step_with_record`` saves a step's inputs and gates (detached, no extra work), and
    ``local_terms`` turns records stacked over the chunk, (M, B, ·), into ElementwiseTerms.
    """

    def step_with_record(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """Like forward, and also the detached tensors that ``local_terms`` needs."""
        raise NotImplementedError

    def local_terms(self, record: tuple[Tensor, ...]) -> ElementwiseTerms:
        """The local derivatives of the step(s) in ``record``; any leading dims, e.g. (M, B)."""
        raise NotImplementedError

    def unroll_chunk(
        self, xs: Tensor, state: Tensor, keeps: Tensor | None = None, record: bool = True
    ) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
        """A chunk of steps with autograd. xs: (M, B, D); keeps: (M, B), 0 where the state is
        reset before step t (None: never). Returns outs (M, B, N), the state after the last step,
        and, if ``record``, the steps' records stacked per field, (M, B, ·) (else ()).

        This reference loops over ``step_with_record``; a core may override it with a faster
        equivalent (ELSTM and RTU do), held equal to this loop by a float64 test."""
        outs, records = [], []
        # unbind, not xs[t]: each slice's backward would zero-fill a whole (M, B, D) gradient
        for t, x in enumerate(xs.unbind(0)):
            if keeps is not None:
                state = state * keeps[t][:, None]
            out, state, step_record = self.step_with_record(x, state)
            outs.append(out)
            records.append(step_record)
        return torch.stack(outs), state, (stack_records(records) if record else ())

    def step_terms(self, x: Tensor, state: Tensor) -> tuple[Tensor, Tensor, ElementwiseTerms]:
        """One step's out and state, and its local derivatives (detached)."""
        out, new, record = self.step_with_record(x, state)
        return out, new, self.local_terms(record)

    def to_diagonal(self, state_like: Tensor) -> Tensor:
        """Map a (·, S) state (or its gradient) to the K diagonal coordinates (·, K)."""
        return state_like

    def parts(self) -> tuple[ElementwisePart, ...]:
        """The blocks whose diagonal coordinates exact RTRL works in: the core itself, unless it
        is made of parts side by side."""
        return (ElementwisePart("", self, slice(None), None),)


def stack_records(records: list) -> Any:
    """Per-step records (tuples of tensors, or tuples of such tuples for a core made of parts)
    stacked over the chunk: every tensor (B, ·) becomes (M, B, ·)."""
    if isinstance(records[0], Tensor):
        return torch.stack(records)
    return tuple(stack_records(list(field)) for field in zip(*records, strict=True))
