"""The compiled kernels are built and loaded: without them the package silently runs its slower torch
paths, so an install that failed to compile them must fail the suite, not skip tests."""

import torch

from siftflow_nn import _native


def test_the_compiled_kernels_are_built_and_loaded():
    assert _native.kernels is not None, _native.MISSING


def test_kernels_take_torch_s_thread_count():
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        assert _native.threads() == 1
    finally:
        torch.set_num_threads(before)
