"""Every rule test runs in float64 from a fixed seed, so that tolerances and z-scores mean something."""

import pytest
import torch


@pytest.fixture(autouse=True)
def float64_seeded():
    previous = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    yield
    torch.set_default_dtype(previous)
