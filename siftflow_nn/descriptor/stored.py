"""The descriptor written straight into its stored form, uint8, on the CPU: ``to_uint8`` of each
``cell * inv_norm`` computed where it is written, so no float descriptor exists, whole or in strips.

The same arithmetic as ``sampling.write_descriptors`` followed by ``to_uint8``: the product in the
maps' dtype, times 255, clamped to ``[0, 255]``, truncated.
"""

import numpy as np
import torch

from siftflow_nn._threads import numba_threads
from siftflow_nn.descriptor.sampling import ScaleSamples, cell_sources

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
            sources = np.array(cell_sources(scale.rows, scale.cols), np.intp)
            inv_norm = scale.inv_norm.numpy()
            full_scale = inv_norm.dtype.type(255)  # in the maps' dtype, as to_uint8 multiplies
            depth = len(sources) * scale.maps[0].shape[1]
            for item in range(out.shape[0]):
                # contiguous maps: one numba type for all, so the kernel can pick one by index
                maps = tuple(np.ascontiguousarray(cells[item].numpy()) for cells in scale.maps)
                _write_cells(maps, sources, inv_norm[item, 0], full_scale, hwc[item, :, :, channel : channel + depth])
            channel += depth
    return out


if AVAILABLE:
    _u = np.uintp  # unsigned indices: numba then skips its negative-index test, and LLVM vectorises

    @numba.njit(cache=True, parallel=True)
    def _write_cells(maps, sources, inv_norm, full_scale, out):
        """``out[y, x, cell * bins + b] = uint8(min(max(m[b, y + top, x + left] * inv_norm[y, x]
        * 255, 0), 255))`` with ``(m, top, left)`` the cell's map and origin (``sources``).

        Row by row, all cells of a row at once: each pixel's 128 bytes are written while its cache
        lines are held (cell by cell over the whole image is 2-3x slower)."""
        height, width = inv_norm.shape
        zero = full_scale - full_scale
        for y in numba.prange(height):
            row, norms = out[y], inv_norm[y]
            channel = 0
            for cell in range(sources.shape[0]):
                cells = maps[sources[cell, 0]]
                top, left = sources[cell, 1], sources[cell, 2]
                bins = cells.shape[0]
                for x in range(width):
                    scale = norms[_u(x)]
                    for b in range(bins):
                        value = cells[_u(b), _u(y + top), _u(x + left)] * scale * full_scale
                        row[_u(x), _u(channel + b)] = np.uint8(np.int32(min(max(value, zero), full_scale)))
                channel += bins
