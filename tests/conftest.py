"""Fixtures shared by the tests: devices, dtypes, reference data, small images."""

from pathlib import Path

import pytest
import torch

DATA = Path(__file__).parent / "data"
REFERENCE = DATA / "reference"

CUDA = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.fixture(params=["cpu", pytest.param("cuda", marks=CUDA)])
def device(request) -> torch.device:
    """Every test that takes ``device`` runs on the CPU, and on CUDA where a GPU is present."""
    return torch.device(request.param)


@pytest.fixture(params=[torch.float32, torch.float64], ids=["fp32", "fp64"])
def dtype(request) -> torch.dtype:
    return request.param


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def _kernel_builds() -> list[str]:
    """The builds of the hand-vectorised kernels (csrc/dispatch.h) this CPU can run, best first."""
    from siftflow_nn import _native

    if _native.kernels is None:
        return ["missing"]  # tests/test_native.py fails the suite; the tests run the torch fallback
    before, builds = _native.kernels.isa(), []
    for build in ("avx512", "avx2", "baseline"):
        try:
            _native.kernels.use_isa(build)
            builds.append(build)
        except ValueError:
            pass
    _native.kernels.use_isa(before)
    return builds


@pytest.fixture(params=_kernel_builds())
def every_build(request):
    """Runs the test once per build of the sweeps and the energy that the CPU can run: a process uses
    its best only, so the others would go untested where they are the users' (CPUs without AVX-512)."""
    from siftflow_nn import _native

    if _native.kernels is None:
        yield request.param
        return
    before = _native.kernels.use_isa(request.param)
    try:
        yield request.param
    finally:
        _native.kernels.use_isa(before)
