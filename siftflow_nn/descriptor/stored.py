"""The descriptor written straight into its stored form, uint8, on the CPU: ``to_uint8`` of each
``cell * inv_norm`` computed where it is written, so no float descriptor exists, whole or in strips.

The same arithmetic as ``sampling.write_descriptors`` followed by ``to_uint8``: the product in the
maps' dtype, times 255, clamped to ``[0, 255]``, truncated (``csrc/descriptor.cpp``).
"""

import numpy as np
import torch

from siftflow_nn._native import kernels, threads
from siftflow_nn.descriptor.sampling import ScaleSamples, cell_sources

AVAILABLE = kernels is not None  # without the kernels the uint8 output goes through a float buffer (paths.py)


def writes_stored(out: torch.Tensor, maps_dtype: torch.dtype) -> bool:
    """Whether ``write_stored`` can fill ``out``: uint8 on the CPU, channels last (each pixel's
    descriptor contiguous), float32 or float64 maps, the compiled kernels built."""
    return (
        AVAILABLE
        and out.dtype == torch.uint8
        and out.device.type == "cpu"
        and out.permute(0, 2, 3, 1).is_contiguous()
        and maps_dtype in (torch.float32, torch.float64)
    )


def write_stored(out: torch.Tensor, scales: list[ScaleSamples]) -> torch.Tensor:
    """``out`` (uint8, ``(B, D, h, w)``, channels last) = ``to_uint8(cell * inv_norm)`` for every
    cell of every scale, each element written once, row by row (all cells of a row at once: each
    pixel's bytes are written while its cache lines are held)."""
    hwc = out.permute(0, 2, 3, 1).numpy()  # (B, h, w, D): a view of out
    channel = 0
    for scale in scales:
        sources = np.array(cell_sources(scale.rows, scale.cols), np.int64)
        inv_norm = scale.inv_norm.numpy()
        for item in range(out.shape[0]):
            maps = [np.ascontiguousarray(cells[item].numpy()) for cells in scale.maps]
            kernels.write_cells(maps, sources, inv_norm[item, 0], hwc[item], channel, threads())
        channel += len(sources) * scale.maps[0].shape[1]
    return out
