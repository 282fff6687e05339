"""The coarse-to-fine schedules of ``SIFTflowc2f.m``: descriptor pyramid, per-level plan, upsampling.

Two versions of the driver exist, and ``schedule`` picks one:

- ``"2009"`` (the demo's; ``../shared/reference/flow``): the pyramid in doubles (``im2double``, then
  per level ``imfilter(fspecial('gaussian', 5, 0.67), 'replicate')`` and ``imresize(0.5,
  'bicubic')``), read back by the mex as ``(unsigned char)(v * 255)``, which on x86 truncates to an
  int and keeps its low byte (undershoots below 0 wrap around to 255, 254, ...: we keep that, it is
  what the original matched); window ``wsize`` below the top, iterations
  ``round(linspace(n, 0.6 n, levels))``.
- ``"2010"`` (the SIFT flow release's; DocUNet's evaluation runs it): the same filter and resize on
  the uint8 descriptors themselves, MATLAB rounding to uint8 after the filter and after each of
  imresize's two passes; window ``wsize + i - 1`` at level ``i`` (1 = finest), ``n`` iterations at
  every level below the top.
"""

import functools
import math
import warnings
from typing import NamedTuple

import numpy as np
import torch

from siftflow_nn import matlab
from siftflow_nn._native import kernels, threads

_GAUSSIAN_SIZE, _GAUSSIAN_SIGMA = 5, 0.67  # fspecial('gaussian', 5, 0.67)
_GAUSSIAN_TAPS = matlab.gaussian_taps(_GAUSSIAN_SIZE, _GAUSSIAN_SIGMA)
SCHEDULES = ("2009", "2010")


class LevelPlan(NamedTuple):
    """What the matcher does at one pyramid level."""

    window: int  # search radius around the upsampled flow
    iterations: int  # belief-propagation iterations
    hierarchy: int  # coarser copies of the field solved first, inside the level
    gamma: float  # small-displacement weight


def level_plans(
    num_levels: int,
    window: int,
    top_window: int,
    iterations: int,
    top_iterations: int,
    gamma: float,
    fast: bool = False,
    schedule: str = "2009",
) -> list[LevelPlan]:
    """Per level, finest first, the plan of ``SIFTflowc2f.m`` of the given ``schedule``.

    Below the top, level ``i`` (1 = finest) has ``num_levels - i`` in-level hierarchy levels, and
    (2009) ``round(linspace(iterations, 0.6 iterations, num_levels))[i]`` iterations in a window
    ``window``, or (2010) ``iterations`` in a window ``window + i - 1``; the top runs
    ``top_iterations`` with 2 in ``top_window``. ``gamma`` doubles at each coarser level. ``fast``:
    a third of the iterations (the in-level hierarchy stays: it is cheap, and without it the
    original's sweeps need all their iterations to carry information across the image).

    Example:
        >>> [plan.iterations for plan in level_plans(4, 2, 10, 30, 60, 1.0)]
        [30, 26, 22, 60]
        >>> [plan.hierarchy for plan in level_plans(4, 2, 10, 30, 60, 1.0)]
        [3, 2, 1, 2]
        >>> [plan.window for plan in level_plans(4, 2, 10, 30, 60, 1.0, schedule="2010")]
        [2, 3, 4, 10]
    """
    ramp = _linspace(iterations, iterations * (0.6 if schedule == "2009" else 1.0), num_levels)
    plans = []
    for level in range(1, num_levels + 1):
        top = level == num_levels
        count = top_iterations if top else int(_matlab_round_scalar(ramp[level - 1]))
        size = top_window if top else window + (level - 1 if schedule == "2010" else 0)
        if fast:
            count = max(1, count // 3)
        plans.append(LevelPlan(size, count, 2 if top else num_levels - level, gamma * 2 ** (level - 1)))
    return plans


def _linspace(start: float, stop: float, count: int) -> list[float]:
    """MATLAB's ``linspace``: ``start + k (stop - start) / (count - 1)``, the last value ``stop``."""
    if count == 1:
        return [stop]
    return [start + k * (stop - start) / (count - 1) for k in range(count - 1)] + [stop]


def _matlab_round_scalar(value: float) -> float:
    return math.copysign(math.floor(abs(value) + 0.5), value)


def level_sizes(height: int, width: int, num_levels: int) -> list[tuple[int, int]]:
    """The size of every level, finest first: ``imresize(0.5)`` gives ``ceil(n / 2)``."""
    sizes = [(height, width)]
    for _ in range(num_levels - 1):
        sizes.append((math.ceil(sizes[-1][0] / 2), math.ceil(sizes[-1][1] / 2)))
    return sizes


@functools.lru_cache(maxsize=64)
def reduction_weights(length: int) -> tuple[np.ndarray, np.ndarray]:
    """One pyramid step along one dimension as a single filter: the 5-tap Gaussian (replicated
    borders) followed by ``imresize``'s 0.5 (mirrored borders), composed in float64.

    Returns ``(indices, weights)``, ``(ceil(length / 2), T)``, read-only (they are cached per
    length), the taps in increasing index order (rows with fewer taps padded with zero weights).
    Filtering with it differs from filtering and resizing one after the other by an ulp or so: the
    uint8 levels are identical on the reference pairs and the Sintel frames (see the tests).

    Example:
        >>> indices, weights = reduction_weights(8)
        >>> indices.shape, round(float(weights.sum(1)[1]), 12)
        ((4, 8), 1.0)
    """
    resize_indices, resize_weights_ = matlab.resize_weights(length, math.ceil(length / 2), 0.5)
    radius = len(_GAUSSIAN_TAPS) // 2
    rows = np.arange(len(resize_indices))[:, None]
    # every (resize tap, Gaussian tap) product, in the order a row adds them up: resize tap by tap
    sources = np.clip(resize_indices[:, :, None] + np.arange(-radius, radius + 1), 0, length - 1)
    sources = sources.reshape(len(rows), -1)
    products = (resize_weights_[:, :, None] * _GAUSSIAN_TAPS).reshape(len(rows), -1)
    first = sources.min(1, keepdims=True)
    span = int((sources - first).max()) + 1
    combined = np.zeros((len(rows), span))
    np.add.at(combined, (rows, sources - first), products)  # in element order: each sum from 0.0, product by product
    present = np.zeros((len(rows), span), bool)
    present[rows, sources - first] = True
    taps = int(present.sum(1).max())
    order = np.argsort(~present, axis=1, kind="stable")[:, :taps]  # each row's sources, increasing
    used = np.take_along_axis(present, order, 1)
    out_indices = np.where(used, first + order, 0)
    out_weights = np.where(used, np.take_along_axis(combined, order, 1), 0.0)
    out_indices.setflags(write=False)
    out_weights.setflags(write=False)
    return out_indices, out_weights


def _wrap_to_uint8(values: torch.Tensor) -> torch.Tensor:
    """``(unsigned char)(v * 255)`` as x86 computes it: truncate to int32, keep the low byte."""
    return torch.bitwise_and((values * 255).to(torch.int32), 0xFF).to(torch.uint8)


def descriptor_pyramid(sift: torch.Tensor, num_levels: int, schedule: str = "2009") -> list[torch.Tensor]:
    """The pyramid of uint8 ``(B, D, H, W)`` descriptors, finest first, each uint8 (see the module).

    In float64 with torch (any device); ``descriptor_pyramid_hwc`` is the compiled CPU twin, equal
    to it bit for bit.
    """
    levels = [sift]
    if schedule == "2010":  # MATLAB's uint8 functions, rounding as they do
        for _ in range(num_levels - 1):
            levels.append(matlab.imresize(matlab.gaussian_filter(levels[-1], _GAUSSIAN_SIZE, _GAUSSIAN_SIGMA), 0.5))
        return levels
    image = sift.double() / 255
    for _ in range(num_levels - 1):
        image = matlab.apply_taps(image, 3, *reduction_weights(image.shape[3]))  # along x first, then y
        image = matlab.apply_taps(image, 2, *reduction_weights(image.shape[2]))
        levels.append(_wrap_to_uint8(image))
    return levels


def descriptor_pyramid_hwc(sift: np.ndarray, num_levels: int, schedule: str = "2009") -> list[np.ndarray]:
    """``descriptor_pyramid`` for one ``(H, W, D)`` uint8 array, with the compiled kernels
    (``csrc/pyramid.cpp``), from the same tables.

    The 2009 steps, in float64, take the channels through all levels 64 at a time, so that the
    intermediates stay small and in cache; the 2010 steps keep uint8 between passes, as MATLAB does,
    and never hold a float64 image.
    """
    height, width, channels = sift.shape
    sizes = level_sizes(height, width, num_levels)
    levels = [np.empty((*size, channels), np.uint8) for size in sizes[1:]]
    sift = np.ascontiguousarray(sift)
    if schedule == "2010":  # per level: the resize's tables, rows first (as resize_plan orders them)
        y_tables, x_tables = [], []
        for size in sizes[:-1]:
            (_, y_indices, y_weights), (_, x_indices, x_weights) = matlab.resize_plan(size, 0.5)[0]
            # imresize's taps at the scale 0.5 are multiples of 1/256: the resize is exact in integers
            y_tables.append((y_indices, matlab.dyadic_taps(y_weights)))
            x_tables.append((x_indices, matlab.dyadic_taps(x_weights)))
        kernels.descriptor_pyramid_2010(sift, _GAUSSIAN_TAPS, y_tables, x_tables, levels, threads())
    else:  # per level: the composed filter-and-resize tables along x and y
        x_tables = [reduction_weights(w) for _, w in sizes[:-1]]
        y_tables = [reduction_weights(h) for h, _ in sizes[:-1]]
        kernels.descriptor_pyramid_2009(sift, x_tables, y_tables, levels, threads())
    return [sift, *levels]


def warn_about_float_descriptors(name: str, nan: int, largest: float, count: int) -> None:
    """What float descriptors given to the matcher could silently spoil: NaN values (read as 0), and
    values on the [0, 1] scale, which the 0..255 scale reads as all zeros."""
    if nan:
        warnings.warn(
            f"{name} holds {nan} NaN descriptor values (of {count}): they are read as 0, so the flow where they "
            f"are means nothing",
            RuntimeWarning,
            stacklevel=5,
        )
    if 0 < largest <= 1:
        warnings.warn(
            f"{name} looks like descriptors on the [0, 1] scale (largest value {largest:.3g}); match() reads float "
            f"descriptors on the 0..255 scale, where these are all 0: pass to_uint8(descriptors) or descriptors * 255",
            RuntimeWarning,
            stacklevel=5,
        )


def upsample_offsets(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``round(imresize(flow, size, 'bicubic') * 2)``: the next finer level's window centres.

    ``flow``: ``(B, 2, h, w)``; returns ``(B, 2, H, W)`` int32.
    """
    upsampled = matlab.imresize(flow.double(), out_size=size)
    return matlab.matlab_round(upsampled * 2).to(torch.int32)
