"""Every rule test runs in float64 from a fixed seed, so that tolerances and z-scores mean something."""

import pytest
import torch


@pytest.fixture(autouse=True)
def float64_seeded_one_thread():
    dtype, threads = torch.get_default_dtype(), torch.get_num_threads()
    torch.set_default_dtype(torch.float64)
    torch.manual_seed(0)
    # The tensors here are tiny: a second intra-op thread only adds synchronisation, and on a
    # shared machine it makes every small op wait for the busier core (measured 8x slower).
    torch.set_num_threads(1)
    yield
    torch.set_default_dtype(dtype)
    torch.set_num_threads(threads)
