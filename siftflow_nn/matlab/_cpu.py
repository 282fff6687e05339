"""When the MATLAB functions take their compiled CPU path (``_compiled.py``), and the planes it takes."""

import numpy as np
import torch

try:
    from siftflow_nn.matlab import _compiled as kernels
except ImportError:  # the compiled kernels are not built: the torch versions run everywhere
    kernels = None


def compiled(*tensors: torch.Tensor) -> bool:
    """Whether ``tensors`` go through the compiled kernels: they are built, they are on the CPU,
    uint8 or float64 (the dtypes whose MATLAB arithmetic the kernels do), and need no gradient."""
    return kernels is not None and all(
        tensor.device.type == "cpu" and tensor.dtype in (torch.uint8, torch.float64) and not tensor.requires_grad
        for tensor in tensors
    )


def planes(tensor: torch.Tensor) -> np.ndarray:
    """``(..., H, W)`` as a C-contiguous ``(N, H, W)`` array (a view where it already is one)."""
    return tensor.detach().reshape(-1, *tensor.shape[-2:]).contiguous().numpy()


def from_planes(array: np.ndarray, like: torch.Tensor) -> torch.Tensor:
    """``planes``'s inverse: ``(N, h, w)`` back to ``like``'s leading dimensions."""
    return torch.from_numpy(array).reshape(*like.shape[:-2], *array.shape[-2:])
