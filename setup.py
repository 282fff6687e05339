"""Builds siftflow_nn's compiled CPU kernels (``siftflow_nn._kernels``, C++ in ``csrc/``) with the
package; everything else about the package is in pyproject.toml.

The kernels are compiled ahead of time, once per install (about a minute on 2 cores), instead of
being compiled on the user's machine at first use. A wheel carries them built; building from source
needs a C++17 compiler (g++ or clang++; MSVC on Windows). Without one the install still succeeds
(the extension is optional) and the package runs its portable torch paths, with a warning.
"""

import sys
from pathlib import Path

from pybind11.setup_helpers import ParallelCompile, Pybind11Extension, build_ext
from setuptools import setup

ParallelCompile("SIFTFLOW_NN_BUILD_JOBS", default=0).install()  # all cores unless the variable says


def compile_flags() -> tuple[list[str], list[str]]:
    """Flags for exact arithmetic (no fused multiply-add: the kernels must give the torch paths'
    float64 bits; wrapping int32, as numpy's) and OpenMP where the compiler has it."""
    if sys.platform == "win32":
        return ["/O2", "/openmp", "/fp:precise"], []
    # -Wno-psabi: the 64-byte vectors of csrc/lanes.h are passed between inlined functions only
    flags = ["-O3", "-ffp-contract=off", "-fwrapv", "-fno-math-errno", "-Wno-psabi"]
    if sys.platform == "darwin":  # Apple's clang has no OpenMP: the kernels run on one thread there
        return flags, []
    return [*flags, "-fopenmp"], ["-fopenmp"]


compile_args, link_args = compile_flags()
setup(
    ext_modules=[
        Pybind11Extension(
            "siftflow_nn._kernels",
            sorted(str(path) for path in Path("csrc").glob("*.cpp")),
            depends=sorted(str(path) for path in Path("csrc").glob("*.h")),
            cxx_std=17,
            extra_compile_args=compile_args,
            extra_link_args=link_args,
            optional=True,
        )
    ],
    cmdclass={"build_ext": build_ext},
)
