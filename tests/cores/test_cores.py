"""The cores: the interface rules rely on, and each step against an independent re-implementation
of its equations (docs/algorithms.md §1, §3, §4; torch's LSTM and GRU cell equations). Float64."""

import pytest
import torch
from torch.autograd.functional import jacobian

from agents.cores import ELSTM, ELSTMRTU, GRU, LSTM, RHN, RTU
from agents.cores.rtu import THETA_LOG_MAX

D, N, B = 3, 4, 2
DT = torch.float64
CORES = {
    "elstm": lambda: ELSTM(D, N),
    "rtu": lambda: RTU(D, N),
    "elstm_rtu": lambda: ELSTMRTU(D, N),  # 2 eLSTM units, 1 complex RTU unit
    "rhn1": lambda: RHN(D, N, depth=1),
    "rhn3": lambda: RHN(D, N, depth=3),
    "lstm": lambda: LSTM(D, N),
    "gru": lambda: GRU(D, N),
}
STATE_SIZE = {"lstm": 2 * N}


def make(name: str):
    """A float64 core with generic parameters (no zero biases that could hide a wrong term)."""
    torch.manual_seed(0)
    core = CORES[name]().double()
    with torch.no_grad():
        for p in core.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return core


def inputs(core, batch: int = B):
    return torch.randn(batch, D, dtype=DT), torch.randn(batch, core.state_size, dtype=DT)


# --- interface --------------------------------------------------------------------------------
@pytest.mark.parametrize("name", CORES)
def test_sizes_shapes_and_initial_state(name):
    core = make(name)
    assert (core.input_size, core.hidden_size) == (D, N)
    assert core.state_size == STATE_SIZE.get(name, N)
    state = core.initial_state(B)
    assert state.shape == (B, core.state_size)
    assert state.dtype == DT and state.device == next(core.parameters()).device
    assert not state.any()
    out, new = core(torch.randn(B, D, dtype=DT), state)
    assert out.shape == (B, N) and new.shape == (B, core.state_size)
    assert out.dtype == new.dtype == DT


@pytest.mark.parametrize("name", CORES)
def test_steps_are_differentiable_through_the_state(name):
    """Two steps from a given state: the gradient reaches the first state, x and every parameter,
    and matches finite differences."""
    core = make(name)
    (x0, s0), x1 = inputs(core), torch.randn(B, D, dtype=DT)

    def two_steps(x0, s0):
        _, s = core(x0, s0)
        return core(x1, s)[0]

    assert torch.autograd.gradcheck(two_steps, (x0.requires_grad_(), s0.requires_grad_()))
    two_steps(x0, s0).sum().backward()
    assert s0.grad.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in core.parameters())


def test_rtu_rejects_an_odd_hidden_size():
    with pytest.raises(ValueError, match="even"):
        RTU(D, 5)


def test_elstm_rtu_splits_the_hidden_size():
    core = ELSTMRTU(D, 128)
    assert (core.elstm.hidden_size, core.rtu.hidden_size) == (64, 64)
    assert (ELSTMRTU(D, 10).sizes, ELSTMRTU(D, 10, rtu_size=8).sizes) == ((6, 4), (2, 8))
    assert set(core.recurrent_parameters()) == {
        *(f"elstm.{n}" for n in ("F", "Z", "w_f", "w_z", "b_f", "b_z")),
        *(f"rtu.{n}" for n in ("nu_log", "theta_log", "W1", "W2")),
    }
    for bad in (0, 3, 10):
        with pytest.raises(ValueError, match="rtu_size"):
            ELSTMRTU(D, 10, rtu_size=bad)


def test_rhn_depth():
    with pytest.raises(ValueError, match="depth"):
        RHN(D, N, depth=0)
    core = RHN(D, N, depth=3)
    # W^1 sees [x, s, 1]; deeper micro-layers see [s, 1]
    assert [tuple(w.shape) for w in core.weights] == [(D + N + 1, 2 * N), *[(N + 1, 2 * N)] * 2]


# --- equations, re-implemented independently ---------------------------------------------------
def elstm_step(core, x, c):
    """docs/algorithms.md §1."""
    f = torch.sigmoid(x @ core.F.T + core.w_f * c + core.b_f)
    z = torch.tanh(x @ core.Z.T + core.w_z * c + core.b_z)
    c = f * c + (1 - f) * z
    o = torch.sigmoid(torch.cat([x, c], 1) @ core.W_o.T + core.b_o)
    return o * c, c


def rtu_step(core, x, state):
    """docs/algorithms.md §3, in real arithmetic."""
    r = torch.exp(-torch.exp(core.nu_log))
    theta = torch.exp(core.theta_log)
    g, phi, n = r * torch.cos(theta), r * torch.sin(theta), torch.sqrt(1 - r**2)
    c1, c2 = state[:, : N // 2], state[:, N // 2 :]
    new = torch.cat([g * c1 - phi * c2 + n * (x @ core.W1.T), g * c2 + phi * c1 + n * (x @ core.W2.T)], 1)
    return torch.relu(new), new


def elstm_rtu_step(core, x, state):
    """The two parts' own equations, side by side: [eLSTM; RTU]."""
    n_e = core.elstm.hidden_size
    out_e, c_e = elstm_step(core.elstm, x, state[:, :n_e])
    r = torch.exp(-torch.exp(core.rtu.nu_log))
    theta = torch.exp(core.rtu.theta_log)
    g, phi, n = r * torch.cos(theta), r * torch.sin(theta), torch.sqrt(1 - r**2)
    c1, c2 = state[:, n_e:].chunk(2, 1)
    rtu = core.rtu
    c_r = torch.cat([g * c1 - phi * c2 + n * (x @ rtu.W1.T), g * c2 + phi * c1 + n * (x @ rtu.W2.T)], 1)
    return torch.cat([out_e, torch.relu(c_r)], 1), torch.cat([c_e, c_r], 1)


def rhn_step(core, x, h):
    """docs/algorithms.md §4, with ŝ built by concatenation."""
    s = h
    for layer, w in enumerate(core.weights):
        ones = torch.ones(len(x), 1, dtype=DT)
        s_hat = torch.cat([x, s, ones] if layer == 0 else [s, ones], 1)
        z = s_hat @ w
        c, f = torch.tanh(z[:, :N]), torch.sigmoid(z[:, N:])
        s = f * s + (1 - f) * c
    return s, s


def lstm_step(core, x, state):
    """torch.nn.LSTMCell's equations; state = [h; c]."""
    h, c = state[:, :N], state[:, N:]
    cell = core.cell
    gates = x @ cell.weight_ih.T + cell.bias_ih + h @ cell.weight_hh.T + cell.bias_hh
    i, f, g, o = gates.chunk(4, 1)
    c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h, torch.cat([h, c], 1)


def gru_step(core, x, h):
    """torch.nn.GRUCell's equations."""
    cell = core.cell
    xi, hi = x @ cell.weight_ih.T + cell.bias_ih, h @ cell.weight_hh.T + cell.bias_hh
    (xr, xz, xn), (hr, hz, hn) = xi.chunk(3, 1), hi.chunk(3, 1)
    r, z = torch.sigmoid(xr + hr), torch.sigmoid(xz + hz)
    h = (1 - z) * torch.tanh(xn + r * hn) + z * h
    return h, h


REFERENCES = {
    "elstm": elstm_step,
    "rtu": rtu_step,
    "elstm_rtu": elstm_rtu_step,
    "rhn1": rhn_step,
    "rhn3": rhn_step,
    "lstm": lstm_step,
    "gru": gru_step,
}


@pytest.mark.parametrize("name", CORES)
def test_step_matches_the_written_equations(name):
    core = make(name)
    x, state = inputs(core)
    got = core(x, state)
    want = REFERENCES[name](core, x, state)
    for g, w in zip(got, want, strict=True):
        torch.testing.assert_close(g, w, rtol=1e-13, atol=1e-14)


# --- the element-wise cores' local derivatives -------------------------------------------------
def diagonal_jacobian(core, jac):
    """A real Jacobian (B, S, ...) of the state, as ∂c/∂· in the K diagonal coordinates."""
    if isinstance(core, RTU):
        n = core.state_size
        return torch.complex(jac[:, : n // 2], jac[:, n // 2 :])
    return jac


@pytest.mark.parametrize("name", ["elstm", "rtu"])
def test_step_terms_are_the_autograd_derivatives(name):
    """a = diag ∂c_t/∂c_{t-1} and coef ⊗ inputs = ∂c_t/∂θ (c_{t-1} fixed), against autograd."""
    core = make(name)
    x, state = inputs(core)
    out, new, terms = core.step_terms(x, state)
    torch.testing.assert_close((out, new), core(x, state), rtol=0, atol=0)
    check_terms(core, x, state, terms)


def test_rtu_phase_is_clamped_and_its_terms_follow():
    """θ_log above log 1000 acts as log 1000 with derivative 0 (the written terms agree with
    autograd on both sides of the clamp), and a θ_log whose exp overflows float32 (88.8, as a
    streaming run reached) leaves the state finite."""
    core = make("rtu")  # 2 complex units: unit 0 above the clamp, unit 1 below
    with torch.no_grad():
        core.theta_log[0] = THETA_LOG_MAX + 1.0
    x, state = inputs(core)
    out, new, terms = core.step_terms(x, state)
    check_terms(core, x, state, terms)
    assert not terms.coef["theta_log"][:, 0].any() and terms.coef["theta_log"][:, 1].abs().min() > 0
    at_clamp = make("rtu")
    with torch.no_grad():
        at_clamp.theta_log[0] = THETA_LOG_MAX
    torch.testing.assert_close(at_clamp(x, state), (out, new), rtol=0, atol=0)
    single = RTU(D, N)
    with torch.no_grad():
        single.theta_log[0] = 88.8
    assert torch.isfinite(single(x.float(), state.float())[1]).all()


def test_elstm_rtu_is_block_diagonal_and_its_parts_terms_are_the_derivatives():
    """Each part's state depends on its own state and parameters only (the off-diagonal blocks of
    the Jacobians are zero), and each part's terms, from the whole core's record, are its
    derivatives."""
    core = make("elstm_rtu")
    x, state = inputs(core)
    out, new, record = core.step_with_record(x, state)
    torch.testing.assert_close((out, new), core(x, state), rtol=0, atol=0)
    jac = jacobian(lambda s: core(x, s)[1], state)  # (B, S, B, S)
    n_e = core.elstm.hidden_size
    assert not jac[:, :n_e, :, n_e:].any() and not jac[:, n_e:, :, :n_e].any()
    for part in core.parts():
        for name, p in core.recurrent_parameters().items():
            if not name.startswith(part.prefix):

                def mine(v, name=name, rows=part.state):
                    params = {**dict(core.named_parameters()), name: v}
                    return torch.func.functional_call(core, params, (x, state))[1][:, rows]

                assert not jacobian(mine, p.detach()).any(), (part.prefix, name)
        terms = part.core.local_terms(record[part.record])
        check_terms(part.core, x, state[:, part.state], terms)


def check_terms(core, x, state, terms):
    """a and coef ⊗ inputs of one element-wise core (not made of parts) against autograd."""
    k = terms.a.shape[1]
    eye = torch.eye(k, dtype=DT)
    for b in range(B):  # one row at a time: rows do not interact
        jac = jacobian(lambda s, b=b: core(x[b : b + 1], s)[1][0], state[b : b + 1])[:, 0]  # (S, S)
        jac = diagonal_jacobian(core, jac[None])[0]  # (K, S)
        want = eye * terms.a[b]
        torch.testing.assert_close(jac[:, :k], want.to(jac.dtype))
        if k < core.state_size:  # RTU: ∂c/∂Im(c_prev) = i a
            torch.testing.assert_close(jac[:, k:], 1j * want)
    for name_p, p in core.recurrent_parameters().items():

        def new_state(value, name_p=name_p):
            params = {**dict(core.named_parameters()), name_p: value}
            return torch.func.functional_call(core, params, (x, state))[1]

        jac = diagonal_jacobian(core, jacobian(new_state, p.detach()))  # (B, K, *p.shape)
        coef, xin = terms.coef[name_p], terms.inputs[name_p]
        local = coef if xin is None else coef[:, :, None] * xin[:, None, :]  # (B, K, *p.shape[1:])
        want = eye.view(1, k, k, *[1] * (p.dim() - 1)) * local[:, None]
        torch.testing.assert_close(jac, want.to(jac.dtype), rtol=1e-12, atol=1e-13, msg=name_p)


# --- the chunked unroll -----------------------------------------------------------------------
@pytest.mark.parametrize("name", ["elstm", "rtu"])
@pytest.mark.parametrize("resets", [False, True])
def test_unroll_chunk_equals_the_step_loop(name, resets):
    """A core's ``unroll_chunk`` (ELSTM: projections and readout batched, the cell one autograd node
    with a written-out backward) gives the step loop's outputs, end state, records and gradients."""
    from agents.cores.base import ElementwiseCore

    core, m = make(name), 5
    torch.manual_seed(1)
    xs0, state0 = torch.randn(m, B, D, dtype=DT), torch.randn(B, core.state_size, dtype=DT)
    keeps = (torch.rand(m, B) > 0.3).to(DT) if resets else None
    w = torch.randn(m, B, core.hidden_size, dtype=DT)  # a generic loss Σ w ⊙ out + Σ end state²
    results = []
    for unroll in (core.unroll_chunk, lambda *a: ElementwiseCore.unroll_chunk(core, *a)):
        xs, state = xs0.clone().requires_grad_(), state0.clone().requires_grad_()
        outs, end, records = unroll(xs, state, keeps, True)
        loss = (w * outs).sum() + (end**2).sum()
        params = list(core.parameters())
        grads = torch.autograd.grad(loss, [xs, state, *params])
        results.append((outs, end, records, grads))
    (outs, end, records, grads), (want_outs, want_end, want_records, want_grads) = results
    torch.testing.assert_close(outs, want_outs, rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(end, want_end, rtol=1e-10, atol=1e-12)
    for got, want in zip(records, want_records, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12)
    names = ["xs", "state", *(n for n, _ in core.named_parameters())]
    for name_, got, want in zip(names, grads, want_grads, strict=True):
        torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-12, msg=name_)


def test_elstm_forget_bias_sets_the_forget_gates_starting_memory():
    """``forget_bias`` only initialises b_f: f = σ(b_f) at zero input and cell, so the cell keeps
    σ(b_f) of itself per step; the default is 2 (the paper's 0 on request)."""
    torch.manual_seed(0)
    assert torch.equal(ELSTM(3, 4).b_f, torch.full((4,), 2.0))
    assert torch.equal(ELSTM(3, 4, forget_bias=0.0).b_f, torch.zeros(4))
    core = ELSTM(3, 4)
    f, _ = core._gates(torch.zeros(1, 3), torch.zeros(1, 4))
    torch.testing.assert_close(f, torch.full((1, 4), torch.sigmoid(torch.tensor(2.0)).item()))
