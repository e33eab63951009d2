"""The image torsos: channels-last storage is an implementation detail that changes no number."""

import copy

import pytest
import torch

from agents.encoders import ImpalaCNN, NatureCNN

TORSOS = {"nature": (NatureCNN, (4, 84, 84)), "impala": (ImpalaCNN, (3, 64, 64))}


@pytest.mark.parametrize("name", TORSOS)
def test_channels_last_torso_matches_the_contiguous_one(name):
    cls, shape = TORSOS[name]
    torch.manual_seed(0)
    fast = cls(*shape).double()
    ref = copy.deepcopy(fast).to(memory_format=torch.contiguous_format)
    convs = [m.weight for m in fast.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not any(
        m.weight.is_contiguous(memory_format=torch.channels_last)
        for m in ref.modules()
        if isinstance(m, torch.nn.Conv2d)
    )  # the reference really is the other layout
    obs = torch.randint(0, 256, (5, *shape), dtype=torch.uint8)
    out, want = fast(obs), ref(obs)
    assert out.shape == (5, fast.out_size)
    torch.testing.assert_close(out, want, rtol=1e-12, atol=1e-12)
    out.square().sum().backward()
    want.square().sum().backward()
    for (n, p), q in zip(fast.named_parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad, rtol=1e-10, atol=1e-12, msg=n)
