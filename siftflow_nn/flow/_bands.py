"""The compiled solver's memory layout ("bands"): ``LANES`` scan lines side by side, skewed.

Ce Liu's ``BPFlow::BP_S`` visits the pixels in raster order (reverse raster going backwards), and
a pixel's messages need only those its left and upper neighbours (right and lower) sent in the
same sweep. So pixel ``(x, y)`` does not depend on ``(x - 1, y + 1)``: in a band of ``LANES`` rows,
the pixels of one anti-diagonal are independent, and the sweeps (``_bp_sweeps.py``) visit them
together, one SIMD lane per row.

Pixel ``(x, y)`` lives in band ``y // LANES``, at step ``x + y % LANES + 1``, in lane ``y % LANES``.
An ``(H, W, R)`` array becomes ``(bands, W + LANES + 1, R, LANES)``, lanes innermost, so that one
step's values of a label are one contiguous vector. A pixel's right neighbour is the same lane at
the next step, its lower neighbour the next lane at the next step (lane 0 of the next band,
``LANES - 1`` steps back, for the last lane). Steps 0 and ``W + LANES`` and the lanes outside the
image are padding, zeros unless said otherwise.

Everything the sweeps read is kept in this layout from the start (the data term is computed
straight into it, the coarser copies of a field are summed in it), so that only the final labels
are turned back into ``(H, W)`` images.
"""

import numba
import numpy as np

LANES = 16  # scan lines per band: one 512-bit vector of int32


@numba.njit(cache=True, inline="always")
def band_count(height):
    """Bands of an ``height``-row field."""
    return (height + LANES - 1) // LANES


def zeros(size: tuple[int, int], rest: tuple[int, ...], layers: int = 2) -> np.ndarray:
    """An ``(H, W)`` field's int32 zeros in bands: ``(layers, bands, steps, *rest, LANES)``."""
    height, width = size
    return np.zeros((layers, band_count(height), width + LANES + 1, *rest, LANES), np.int32)


@numba.njit(cache=True, inline="always")
def pixel_of(band, step, lane, height, width):
    """``(x, y, inside)`` of a band position: ``inside`` is False for the padding."""
    x, y = step - 1 - lane, band * LANES + lane
    return x, y, (0 <= x < width) and y < height


@numba.njit(cache=True, parallel=True)
def to_bands(array):
    """``(H, W, R)`` -> ``(bands, W + LANES + 1, R, LANES)``, zeros in the padding."""
    height, width, rest = array.shape
    out = np.zeros((band_count(height), width + LANES + 1, rest, LANES), array.dtype)
    for band in numba.prange(out.shape[0]):  # in the order of the output, one step's block at a time
        for step in range(1, width + LANES):
            for lane in range(min(LANES, height - band * LANES)):
                x = step - 1 - lane
                if 0 <= x < width:
                    for index in range(rest):
                        out[band, step, index, lane] = array[band * LANES + lane, x, index]
    return out


@numba.njit(cache=True)
def from_bands(bands, height, width):
    """The inverse of ``to_bands``: ``(H, W, R)``."""
    rest = bands.shape[2]
    out = np.empty((height, width, rest), bands.dtype)
    for y in range(height):
        band, lane = y // LANES, y % LANES
        for x in range(width):
            for index in range(rest):
                out[y, x, index] = bands[band, x + lane + 1, index, lane]
    return out


def layers_to_bands(array: np.ndarray) -> np.ndarray:
    """Both layers: ``(2, H, W, *rest)`` -> ``(2, bands, steps, *rest, LANES)``."""
    layers, height, width, *rest = array.shape
    banded = [to_bands(np.ascontiguousarray(layer).reshape(height, width, -1)) for layer in array]
    return np.stack(banded).reshape(layers, *banded[0].shape[:2], *rest, LANES)


def layers_from_bands(array: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The inverse of ``layers_to_bands``: ``(2, H, W, *rest)``."""
    layers, bands, steps, *rest = array.shape
    flat = [from_bands(np.ascontiguousarray(layer).reshape(bands, steps, -1, rest[-1]), *size) for layer in array]
    return np.stack(flat).reshape(layers, *size, *rest[:-1])


def finer(coarse: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The original's ``propagateFinerLevel`` in bands: every pixel of the ``size`` field starts
    from the messages of its 2 x 2 block in the coarser field (``coarse``, from ``zeros``)."""
    layers, _, _, *rest, lanes = coarse.shape
    out = np.empty((layers, band_count(size[0]), size[1] + LANES + 1, *rest, lanes), np.int32)
    _copy_to_finer(coarse.reshape(*coarse.shape[:3], -1, lanes), *size, out.reshape(*out.shape[:3], -1, lanes))
    return out


@numba.njit(cache=True, parallel=True)
def _copy_to_finer(coarse, height, width, out):
    """``out`` (every entry written: the padding with zeros) from the coarser field's blocks."""
    rest = out.shape[3]
    for band in numba.prange(out.shape[1]):  # in the order of the output, one step's block at a time
        for layer in range(out.shape[0]):
            for step in range(out.shape[2]):
                for lane in range(LANES):
                    x, y, inside = pixel_of(band, step, lane, height, width)
                    if not inside:
                        for index in range(rest):
                            out[layer, band, step, index, lane] = 0
                        continue
                    coarse_band, coarse_lane = (y // 2) // LANES, (y // 2) % LANES
                    coarse_step = x // 2 + coarse_lane + 1
                    for index in range(rest):
                        out[layer, band, step, index, lane] = coarse[
                            layer, coarse_band, coarse_step, index, coarse_lane
                        ]
