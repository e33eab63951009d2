"""ObGD (agents/obgd.py): the overshoot bound, λ = 0 as a semi-gradient step, several streams."""

from __future__ import annotations

import pytest
import torch

from agents.obgd import ObGD


def linear_td_case(seed: int, size: int = 32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Weights, features in [−1, 1] and a TD target for V(x) = wᵀx (float64)."""
    g = torch.Generator().manual_seed(seed)
    w = torch.randn(size, generator=g, dtype=torch.float64)
    x = torch.rand(size, generator=g, dtype=torch.float64) * 2 - 1
    target = torch.randn((), generator=g, dtype=torch.float64) * 5
    return w, x, target


@pytest.mark.parametrize("kappa", [1.0, 2.0, 3.0])
def test_the_bounded_step_never_moves_a_linear_prediction_past_its_target(kappa):
    """V = wᵀx with features in [−1, 1]: the full step α δ x moves V by α δ ‖x‖², past the target
    when α ‖x‖² > 1; ObGD's step moves it by at most |δ|/κ towards the target."""
    overshoots = 0
    for seed in range(200):
        w, x, target = linear_td_case(seed)
        delta = target - w @ x
        overshoots += bool(abs(delta * (x @ x)) > abs(delta))  # plain semi-gradient step, α = 1
        p = torch.nn.Parameter(w.clone())
        p.grad = x.clone()  # ∇_w V
        opt = ObGD([p], lr=1.0, gamma=0.99, trace_lambda=0.0, kappa=kappa)
        opt.step(delta.reshape(1))
        moved = p.detach() @ x - w @ x
        assert torch.sign(moved) == torch.sign(delta)  # towards the target
        assert abs(moved) <= abs(delta) / kappa + 1e-12  # never past it (nor past 1/κ of the way)
    assert overshoots == 200  # the unbounded step overshoots every case here


def test_the_bound_holds_with_traces_and_several_streams():
    """Two streams, λ > 0: each stream's prediction moves by at most 1/κ (features in [−1, 1])."""
    g = torch.Generator().manual_seed(0)
    p = torch.nn.Parameter(torch.randn(16, generator=g, dtype=torch.float64))
    opt = ObGD([p], lr=1.0, gamma=0.9, trace_lambda=0.8, kappa=2.0, num_streams=2)
    for _ in range(50):
        x = torch.rand(2, 16, generator=g, dtype=torch.float64) * 2 - 1
        delta = torch.randn(2, generator=g, dtype=torch.float64) * 3
        before = x @ p.detach()
        step = opt.step(delta, grads=x)
        assert ((x @ p.detach() - before).abs() <= 1 / 2 + 1e-12).all()
        assert float(step.bound) > 1  # the bound was active: a real test of it


def test_with_lambda_zero_it_is_a_one_step_semi_gradient_step():
    """λ = 0: z = ∇V, so the update is SGD on ½(target − V)² with the target held fixed, at the
    step size α / max(M, 1) (α itself while the bound is inactive)."""
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    twin = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1)).double()
    twin.load_state_dict(net.state_dict())
    obgd = ObGD(net.parameters(), lr=0.01, gamma=0.99, trace_lambda=0.0, kappa=2.0)
    sgd = torch.optim.SGD(twin.parameters(), lr=0.01)
    for t in range(20):
        obs, target = torch.randn(4, dtype=torch.float64), torch.tensor(float(t % 3), dtype=torch.float64)
        net.zero_grad()
        value = net(obs)[0]
        value.backward()  # ∇V
        step = obgd.step((target - value).detach().reshape(1))
        assert float(step.bound) < 1 and float(step.step_size) == 0.01
        sgd.zero_grad()
        (0.5 * (target - twin(obs)[0]) ** 2).backward()
        sgd.step()
        for a, b in zip(net.parameters(), twin.parameters(), strict=True):
            torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_one_stream_is_the_papers_step_and_bad_streams_are_left_out():
    p = torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))
    opt = ObGD([p], lr=1.0, gamma=0.5, trace_lambda=0.5, kappa=2.0)
    p.grad = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    opt.step(torch.tensor([4.0], dtype=torch.float64))
    # m = α κ max(|δ|, 1) ‖z‖₁ = 2 · 4 · 3.5 = 28 > 1: p = δ z / m
    torch.testing.assert_close(p.detach(), 4.0 * p.grad / 28)
    p.grad = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    before = p.detach().clone()
    opt.step(torch.tensor([1.0], dtype=torch.float64), keep=torch.zeros(1))  # the trace restarts
    torch.testing.assert_close(opt.traces()[0][0], p.grad)
    torch.testing.assert_close(p.detach() - before, p.grad / 2)  # m = 2: α/m δ z

    two = ObGD([p], lr=1.0, num_streams=2)
    before = p.detach().clone()
    grads = torch.tensor([[1.0, 1.0, 1.0], [float("nan"), 0, 0]], dtype=torch.float64)
    step = two.step(
        torch.tensor([0.1, 0.1], dtype=torch.float64), grads=grads, weight=torch.tensor([0.5, 0.5])
    )
    assert int(step.dropped) == 1 and torch.isfinite(p).all() and not torch.equal(p.detach(), before)
    assert (two.traces()[0][1] == 0).all()  # the bad stream's trace starts again
