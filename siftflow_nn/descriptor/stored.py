"""The descriptor written straight into its stored form, uint8, on the CPU: ``to_uint8`` of each
``cell * inv_norm`` computed where it is written, so no float descriptor exists, whole or in strips.

The same arithmetic as ``sampling.write_descriptors`` followed by ``to_uint8``: the product in the
maps' dtype, times 255, clamped to ``[0, 255]``, truncated.
"""

import numpy as np
import torch

from siftflow_nn._threads import numba_threads
from siftflow_nn.descriptor.sampling import ScaleSamples, cell_views

try:
    import numba
except ImportError:  # without numba the uint8 output goes through a float buffer (paths.py)
    numba = None

AVAILABLE = numba is not None


def writes_stored(out: torch.Tensor, maps_dtype: torch.dtype) -> bool:
    """Whether ``write_stored`` can fill ``out``: uint8 on the CPU, channels last (each pixel's
    descriptor contiguous), float32 or float64 maps, numba installed."""
    return (
        AVAILABLE
        and out.dtype == torch.uint8
        and out.device.type == "cpu"
        and out.permute(0, 2, 3, 1).is_contiguous()
        and maps_dtype in (torch.float32, torch.float64)
    )


def write_stored(out: torch.Tensor, scales: list[ScaleSamples]) -> torch.Tensor:
    """``out`` (uint8, ``(B, D, h, w)``, channels last) = ``to_uint8(cell * inv_norm)`` for every
    cell of every scale, each element written once."""
    hwc = out.permute(0, 2, 3, 1).numpy()  # (B, h, w, D): a view of out
    channel = 0
    with numba_threads():
        for scale in scales:
            inv_norm = scale.inv_norm.numpy()
            full_scale = inv_norm.dtype.type(255)  # in the maps' dtype, as to_uint8 multiplies
            for view in cell_views(scale.maps, scale.rows, scale.cols, out.shape[2], out.shape[3]):
                bins = view.shape[1]
                for item in range(out.shape[0]):
                    _write_cells(
                        view[item].numpy(), inv_norm[item, 0], full_scale, hwc[item, :, :, channel : channel + bins]
                    )
                channel += bins
    return out


if AVAILABLE:

    @numba.njit(cache=True, parallel=True)
    def _write_cells(cells, inv_norm, full_scale, out):
        """``out[y, x, b] = uint8(min(max(cells[b, y, x] * inv_norm[y, x] * 255, 0), 255))``."""
        bins, height, width = cells.shape
        zero = full_scale - full_scale
        for y in numba.prange(height):
            for x in range(width):
                scale = inv_norm[y, x]
                for b in range(bins):
                    value = cells[b, y, x] * scale * full_scale
                    out[y, x, b] = np.uint8(min(max(value, zero), full_scale))
