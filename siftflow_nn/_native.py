"""The compiled CPU kernels (``siftflow_nn._kernels``: C++ in ``csrc/``, built with the package).

They are compiled ahead of time, when the package is built (a wheel carries them), so nothing is
compiled on first use. Where they are missing (a source install without a C++ compiler), ``kernels``
is None and the package runs its portable torch paths: ``SIFTFlow`` says so once, in a warning.
Every kernel takes the number of threads it may use: ``threads()``, torch's count, so that work
split over processes (``docunet --jobs``) never oversubscribes the cores.
"""

from __future__ import annotations

import torch

try:
    from siftflow_nn import _kernels as kernels
except ImportError as error:  # not built, or built for another Python
    kernels = None
    MISSING = f"the compiled kernels (siftflow_nn._kernels) could not be loaded: {error}"
else:
    MISSING = ""


def threads() -> int:
    """The threads a kernel may use: as many as torch's ops (``torch.set_num_threads``)."""
    return max(1, torch.get_num_threads())
