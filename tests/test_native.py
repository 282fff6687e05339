"""The compiled kernels are built and loaded: without them the package silently runs its slower torch
paths, so an install that failed to compile them must fail the suite, not skip tests."""

import os
import subprocess
import sys

import pytest
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


def test_the_instruction_set_can_be_chosen_lower_never_higher():
    # a process runs the best its CPU has, or SIFTFLOW_NN_ISA's choice (the tests of the sweeps run
    # every build through use_isa, the `every_build` fixture)
    builds = ["avx512", "avx2", "baseline"]
    best = _native.kernels.isa()
    environment = {**os.environ, "SIFTFLOW_NN_ISA": "baseline"}
    script = "from siftflow_nn._native import kernels; print(kernels.isa())"
    chosen = subprocess.run([sys.executable, "-c", script], env=environment, capture_output=True, text=True)
    assert chosen.stdout.strip() == "baseline", chosen.stdout + chosen.stderr
    higher = builds[: builds.index(best)]
    for build in higher:
        with pytest.raises(ValueError, match=f"this CPU has up to {best}, not {build}"):
            _native.kernels.use_isa(build)
    with pytest.raises(ValueError, match="expected avx512, avx2 or baseline, got 'sse'"):
        _native.kernels.use_isa("sse")
    assert _native.kernels.use_isa("baseline") == best
    try:
        assert _native.kernels.isa() == "baseline"
    finally:
        _native.kernels.use_isa(best)
