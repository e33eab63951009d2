"""The carried gradient Σ_b e_bᵀ G_b that each rule adds at a chunk's start, and KF-RTRL's
Kronecker orientation ∂h_j/∂W[i, k] ≈ u_i A_jk, written out with explicit Kronecker products."""

import pytest
import torch

from agents.rules import KFRTRL

from .helpers import RULE_CORE_PAIRS, RULES, dense_layout, exact_sensitivity, make_core, run_traces


def test_kfrtrl_kronecker_product_is_dense_g_after_a_reset():
    core = make_core("rhn1", input_size=1, hidden_size=2)  # W: (D + N + 1, 2N) = (4, 4)
    xs = torch.randn(1, 3, 1)
    rule = KFRTRL(core)
    ((u, a),) = rule.factors(run_traces(rule, xs).traces)
    exact = exact_sensitivity(core, xs)  # (B, N, 16), W flattened row-major
    for b in range(xs.shape[1]):
        # kron(u (1×4), A (2×4))[j, 4i + k] = u_i A_jk
        kron = torch.kron(u[b][None, :], a[b])
        torch.testing.assert_close(kron, exact[b], rtol=1e-12, atol=1e-14)


def test_kfrtrl_carried_grads_is_the_explicit_contraction():
    core = make_core("rhn1", input_size=1, hidden_size=2)
    xs = torch.randn(6, 3, 1)  # several steps: an estimate now, but the contraction is the same
    rule = KFRTRL(core)
    traces = run_traces(rule, xs).traces
    ((u, a),) = rule.factors(traces)
    e = torch.randn(3, 2)
    want = sum(e[b] @ torch.kron(u[b][None, :], a[b]) for b in range(3))
    (got,) = rule._carried_grads(traces, e)
    torch.testing.assert_close(got, want.view(4, 4), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize(("rule_name", "core_name"), [p for p in RULE_CORE_PAIRS if p[0] != "tbptt"])
def test_carried_grads_contract_the_dense_sensitivity(rule_name, core_name):
    """Each rule's fast contraction equals Σ_b e_bᵀ G_b over its traces in the dense layout, and
    comes back in the parameters' shapes."""
    core = make_core(core_name)
    rule = RULES[rule_name](core)
    traces = run_traces(rule, torch.randn(6, 3, core.input_size)).traces
    e = torch.randn(3, core.state_size)
    got = rule._carried_grads(traces, e)
    assert [g.shape for g in got] == [p.shape for p in rule.params.values()]
    want = torch.einsum("bs,bsp->p", e, dense_layout(rule, traces))
    torch.testing.assert_close(torch.cat([g.flatten() for g in got]), want, rtol=1e-12, atol=1e-12)
