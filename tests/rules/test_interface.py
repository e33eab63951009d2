"""What a learner relies on beyond the gradient: bounded memory, the core's dtype, clear errors."""

import pytest
import torch

from agents.cores import ELSTM, GRU, LSTM, RHN
from agents.rules import KFRTRL, RTRL

from .helpers import RULE_CORE_PAIRS, RULES, make_core


def footprint(rstate) -> int:
    tensors = [rstate.state, *rstate.traces.values()]
    # The returned state must hold no graph: one kept alive would grow with every step.
    assert all(t.grad_fn is None and not t.requires_grad for t in tensors)
    return sum(t.numel() * t.element_size() for t in tensors)


def run_steps(rule, steps: int, batch: int = 2, backward: bool = True):
    rstate = rule.initial_state(batch)
    for _ in range(steps):
        x = torch.randn(batch, rule.core.input_size, dtype=rstate.state.dtype, device=rstate.state.device)
        out, rstate = rule.step(x, rstate)
        if backward:
            out.sum().backward()
    return rstate


@pytest.mark.parametrize(("rule_name", "core_name"), RULE_CORE_PAIRS)
def test_state_size_does_not_grow_with_steps(rule_name, core_name):
    rule = RULES[rule_name](make_core(core_name))
    assert footprint(run_steps(rule, 1)) == footprint(run_steps(rule, 100, backward=False))
    sizes = []
    for chunk in (4, 64):
        outs, rstate = rule.unroll(torch.randn(chunk, 2, rule.core.input_size), rule.initial_state(2))
        outs.sum().backward()
        sizes.append(footprint(rstate))
    assert sizes[0] == sizes[1] == footprint(rule.initial_state(2))


# The GPU case runs wherever one is present (the traces must follow the core there too).
DEVICES = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
COMPLEX = {torch.float32: torch.complex64, torch.float64: torch.complex128}


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize(("rule_name", "core_name"), RULE_CORE_PAIRS)
def test_rule_runs_in_the_core_dtype_and_device(rule_name, core_name, dtype, device):
    rule = RULES[rule_name](make_core(core_name).to(device=device, dtype=dtype))
    rstate = run_steps(rule, 3)
    # RTU's units are complex (beside eLSTM's real ones in elstm_rtu)
    complex_traces = rule_name == "rtrl" and core_name in ("rtu", "elstm_rtu")
    assert rstate.state.dtype == dtype
    assert {t.dtype for t in rstate.traces.values()} <= {dtype, *([COMPLEX[dtype]] if complex_traces else [])}
    assert {t.device.type for t in [rstate.state, *rstate.traces.values()]} == {device}
    assert all(p.grad.dtype == dtype for p in rule.core.parameters())


def test_kfrtrl_rejects_other_cores():
    with pytest.raises(TypeError, match="RHN"):
        KFRTRL(ELSTM(3, 4))


@pytest.mark.parametrize("core", [LSTM(3, 4), GRU(3, 4), RHN(3, 4)])
def test_elementwise_rtrl_rejects_dense_cores(core):
    with pytest.raises(TypeError, match="method='dense'"):
        RTRL(core, method="elementwise")


def test_rtrl_rejects_unknown_method():
    with pytest.raises(ValueError, match="method"):
        RTRL(GRU(3, 4), method="bptt")


def test_dense_rtrl_refuses_a_huge_sensitivity():
    rule = RTRL(GRU(64, 512), method="dense")  # 16 × 512 × 887k numbers
    with pytest.raises(ValueError, match="dense RTRL on GRU needs a 16x512x"):
        rule.initial_state(16)
