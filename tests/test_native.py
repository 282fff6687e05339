"""The compiled kernels are built and loaded: without them the package silently runs its slower torch
paths, so an install that failed to compile them must fail the suite, not skip tests."""

import os
import subprocess
import sys
from pathlib import Path

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


# The sweeps and the energy are built once per instruction set (csrc/dispatch.h) and a process runs the
# best its CPU has, so the suite alone would check only that one: the lower builds are checked here
# against the same reference flows and energies, each in a process of its own.
_PER_BUILD_TESTS = [
    "tests/flow/test_bp_sweeps.py",
    "tests/flow/test_sift_flow.py::TestSIFTFlow::test_compiled_solver_reproduces_the_original_at_every_level",
    "tests/flow/test_sift_flow.py::TestSIFTFlow::test_energy_matches_the_original_exactly",
    "tests/flow/test_sift_flow.py::TestMatchInputs::test_every_layout_and_dtype_gives_the_uint8_flow",
]
_BUILDS = ["avx512", "avx2", "baseline"]


@pytest.mark.parametrize("build", _BUILDS[1:])
def test_every_build_of_the_sweeps_reproduces_the_original(build):
    if _BUILDS.index(_native.kernels.isa()) > _BUILDS.index(build):
        pytest.skip(f"this CPU cannot run the {build} build")  # never the case for the baseline
    root = Path(__file__).resolve().parents[1]
    environment = {**os.environ, "SIFTFLOW_NN_ISA": build}
    chosen = subprocess.run(
        [sys.executable, "-c", "from siftflow_nn._native import kernels; print(kernels.isa())"],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert chosen.stdout.strip() == build
    tests = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *_PER_BUILD_TESTS],
        cwd=root,
        env=environment,
        capture_output=True,
        text=True,
    )
    assert tests.returncode == 0, tests.stdout[-3000:] + tests.stderr[-2000:]
