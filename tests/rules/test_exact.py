"""Exact RTRL (element-wise and dense paths) against full BPTT, in float64 (docs/algorithms.md §1–4, §7)."""

import pytest
import torch

from agents.cores.rtu import THETA_LOG_MAX
from agents.rules import RTRL

from .helpers import (
    RULE_CORE_PAIRS,
    RULES,
    bptt_grads,
    dense_layout,
    exact_sensitivity,
    make_core,
    make_episode,
    relative_errors,
    rule_grads,
    run_traces,
)

TOL = 1e-8
STEPS = 24
#: per-step step + reset; chunks of 5 (resets inside a chunk and on its boundary, a short last
#: chunk); the whole sequence as one unroll
CHUNKS = [1, 5, STEPS]
CASES = [
    ("elstm", "elementwise"),
    ("rtu", "elementwise"),
    ("elstm_rtu", "elementwise"),
    *[(core, "dense") for core in ("elstm", "rtu", "elstm_rtu", "rhn1", "rhn2", "lstm", "gru")],
]


@pytest.mark.parametrize("chunk", CHUNKS)
@pytest.mark.parametrize(("core_name", "method"), CASES)
def test_rtrl_gradient_equals_bptt(core_name, method, chunk):
    core = make_core(core_name)
    ep = make_episode(core, steps=STEPS)
    want = bptt_grads(core, ep)
    got = rule_grads(RTRL(core, method=method), ep, chunk)
    errors = relative_errors(got, want)  # every parameter, the readout's too
    assert max(errors.values()) < TOL, errors


@pytest.mark.parametrize("chunk", CHUNKS)
def test_rtrl_gradient_equals_bptt_with_an_rtu_phase_at_its_clamp(chunk):
    """Above the clamp θ_log's gradient is 0 in both, and every other gradient still agrees."""
    core = make_core("rtu")
    with torch.no_grad():
        core.theta_log[0] = THETA_LOG_MAX + 0.5
    ep = make_episode(core, steps=STEPS)
    want = bptt_grads(core, ep)
    got = rule_grads(RTRL(core, method="elementwise"), ep, chunk)
    errors = relative_errors(got, want)
    assert max(errors.values()) < TOL, errors
    theta = next(n for n in want if n.endswith("theta_log"))
    assert want[theta][0] == 0 and want[theta][1] != 0


def test_elstm_rtu_keeps_each_part_in_its_own_coordinates():
    """The eLSTM part's traces stay real (no complex cost), the RTU part's are complex."""
    rule = RTRL(make_core("elstm_rtu"), method="elementwise")
    traces = rule.initial_state(2).traces
    assert set(traces) == set(rule.params)
    assert {n for n, t in traces.items() if t.is_complex()} == {n for n in traces if n.startswith("rtu.")}


def test_episode_resets_change_the_gradient():
    # Otherwise the reset handling above would go untested.
    core = make_core("elstm")
    ep = make_episode(core, steps=STEPS)
    no_resets = ep._replace(starts=torch.zeros_like(ep.starts))
    errors = relative_errors(bptt_grads(core, no_resets), bptt_grads(core, ep))
    assert max(errors.values()) > 1e-2, errors


@pytest.mark.parametrize("core_name", ["elstm", "rtu", "elstm_rtu"])
def test_elementwise_and_dense_traces_agree(core_name):
    """The element-wise sensitivities are the diagonal blocks of dense G, and the rest of G is zero;
    RTU's complex unit k is state rows k (real part) and N/2 + k (imaginary part). For eLSTM
    beside RTU, each part's blocks sit in its own rows, and G is zero between the parts."""
    core = make_core(core_name)
    ep = make_episode(core, steps=STEPS)
    rule = RTRL(core, method="elementwise")
    got = dense_layout(rule, run_traces(rule, ep.xs, ep.starts).traces)
    want = exact_sensitivity(core, ep.xs, ep.starts)
    torch.testing.assert_close(got, want, rtol=TOL, atol=TOL * want.abs().max())


@pytest.mark.parametrize(("rule_name", "core_name"), RULE_CORE_PAIRS)
def test_input_gradient_of_step_is_the_one_step_gradient(rule_name, core_name):
    """x_t gets ∂L_t/∂x_t through one core step from the (detached) previous state: rules carry
    credit to parameters only."""
    core = make_core(core_name)
    rule = RULES[rule_name](core)
    ep = make_episode(core, steps=6, resets=())
    rstate = rule.initial_state(ep.batch)
    for x in ep.xs[:-1]:
        _, rstate = rule.step(x, rstate)
    x = ep.xs[-1].clone().requires_grad_()
    out, _ = rule.step(x, rstate)
    (got,) = torch.autograd.grad((ep.ws[-1] * out).sum(), x)
    x_ref = ep.xs[-1].clone().requires_grad_()
    out_ref, _ = core(x_ref, rstate.state)
    (want,) = torch.autograd.grad((ep.ws[-1] * out_ref).sum(), x_ref)
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-14)
