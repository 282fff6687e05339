"""The coarse-to-fine schedule of ``SIFTflowc2f.m``: descriptor pyramid, per-level plan, upsampling.

The 2009 driver (the one the demo and ``../shared/reference/flow`` use) builds the pyramid on the
descriptors as doubles: ``im2double``, then per level ``imfilter(fspecial('gaussian', 5, 0.67),
'replicate')`` and ``imresize(0.5, 'bicubic')`` (``matlab``'s float64 versions). The mex file reads each level back as
``(unsigned char)(v * 255)``, which on x86 truncates to an int and keeps its low byte: values the
bicubic kernel pushes below 0 wrap around to 255, 254, ... . We do the same, so that the matcher
sees the original's numbers (the wrapped entries are rare and cost a little at the borders of
strong features; clamping them instead would change the energies the original reports).
"""

import math
from typing import NamedTuple

import numpy as np
import torch

from siftflow_nn import matlab

_GAUSSIAN_SIZE, _GAUSSIAN_SIGMA = 5, 0.67  # fspecial('gaussian', 5, 0.67)
_GAUSSIAN_TAPS = matlab.gaussian_taps(_GAUSSIAN_SIZE, _GAUSSIAN_SIGMA)
_CHANNEL_CHUNK = 16  # channels filtered at a time by the compiled path: bounds its float64 room


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
) -> list[LevelPlan]:
    """Per level, finest first, the plan of ``SIFTflowc2f.m`` (2009).

    Below the top, level ``i`` (1 = finest) runs ``round(linspace(iterations, 0.6 iterations,
    num_levels))[i]`` iterations with ``num_levels - i`` in-level hierarchy levels; the top runs
    ``top_iterations`` with 2. ``gamma`` doubles at each coarser level. ``fast``: a third of the
    iterations (the in-level hierarchy stays: it is cheap, and without it the original's sweeps
    need all their iterations to carry information across the image).

    Example:
        >>> [plan.iterations for plan in level_plans(4, 2, 10, 30, 60, 1.0)]
        [30, 26, 22, 60]
        >>> [plan.hierarchy for plan in level_plans(4, 2, 10, 30, 60, 1.0)]
        [3, 2, 1, 2]
    """
    plans = []
    for level in range(1, num_levels + 1):
        top = level == num_levels
        ramp = _linspace(iterations, iterations * 0.6, num_levels)[level - 1]
        count = top_iterations if top else int(_matlab_round_scalar(ramp))
        hierarchy = 2 if top else num_levels - level
        if fast:
            count = max(1, count // 3)
        plans.append(LevelPlan(top_window if top else window, count, hierarchy, gamma * 2 ** (level - 1)))
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


def reduction_weights(length: int) -> tuple[np.ndarray, np.ndarray]:
    """One pyramid step along one dimension as a single filter: the 5-tap Gaussian (replicated
    borders) followed by ``imresize``'s 0.5 (mirrored borders), composed in float64.

    Returns ``(indices, weights)``, ``(ceil(length / 2), T)``, the taps in increasing index order
    (rows with fewer taps padded with zero weights). Filtering with it differs from filtering and
    resizing one after the other by an ulp or so: the uint8 levels are identical on the reference
    pairs and the Sintel frames (see the tests).
    """
    resize_indices, resize_weights_ = matlab.resize_weights(length, math.ceil(length / 2), 0.5)
    radius = len(_GAUSSIAN_TAPS) // 2
    rows = []
    for indices, weights in zip(resize_indices, resize_weights_):
        combined: dict[int, float] = {}
        for index, weight in zip(indices, weights):
            for offset, tap in enumerate(_GAUSSIAN_TAPS):
                source = min(max(int(index) + offset - radius, 0), length - 1)
                combined[source] = combined.get(source, 0.0) + weight * tap
        rows.append(sorted(combined.items()))
    taps = max(len(row) for row in rows)
    out_indices = np.zeros((len(rows), taps), np.int64)
    out_weights = np.zeros((len(rows), taps))
    for row_index, row in enumerate(rows):
        out_indices[row_index, : len(row)] = [index for index, _ in row]
        out_weights[row_index, : len(row)] = [weight for _, weight in row]
    return out_indices, out_weights


def _wrap_to_uint8(values: torch.Tensor) -> torch.Tensor:
    """``(unsigned char)(v * 255)`` as x86 computes it: truncate to int32, keep the low byte."""
    return torch.bitwise_and((values * 255).to(torch.int32), 0xFF).to(torch.uint8)


def descriptor_pyramid(sift: torch.Tensor, num_levels: int) -> list[torch.Tensor]:
    """The 2009 driver's pyramid of uint8 ``(B, D, H, W)`` descriptors, finest first, each uint8.

    In float64 with torch (any device); ``descriptor_pyramid_hwc`` is the compiled CPU twin, equal
    to it bit for bit.
    """
    levels = [sift]
    image = sift.double() / 255
    for _ in range(num_levels - 1):
        image = matlab.apply_taps(image, 3, *reduction_weights(image.shape[3]))  # along x first, then y
        image = matlab.apply_taps(image, 2, *reduction_weights(image.shape[2]))
        levels.append(_wrap_to_uint8(image))
    return levels


def descriptor_pyramid_hwc(sift: np.ndarray, num_levels: int) -> list[np.ndarray]:
    """``descriptor_pyramid`` for one ``(H, W, D)`` uint8 array, with the compiled kernels.

    Channels are independent, so they go through all levels a chunk at a time: the float64
    intermediates stay small (a few tens of MB), and are recycled from chunk to chunk.
    """
    from siftflow_nn.flow import _pyramid_kernels as kernels

    height, width, channels = sift.shape
    sizes = level_sizes(height, width, num_levels)
    tables = [(reduction_weights(w), reduction_weights(h)) for h, w in sizes[:-1]]
    levels = [sift] + [np.empty((*size, channels), np.uint8) for size in sizes[1:]]
    room: dict[tuple, np.ndarray] = {}

    def buffer(role: str, shape: tuple[int, ...]) -> np.ndarray:
        if (role, shape) not in room:
            room[role, shape] = np.empty(shape)
        return room[role, shape]

    for start in range(0, channels, _CHANNEL_CHUNK):
        source = sift[:, :, start : start + _CHANNEL_CHUNK]
        count, divisor = source.shape[2], 255.0  # im2double of the uint8 finest level
        for level, (along_x, along_y) in enumerate(tables):
            (h, _), (out_h, out_w) = sizes[level], sizes[level + 1]
            reduced_x = buffer("x", (h, out_w, count))
            kernels.reduce_along_x(source, *along_x, divisor, reduced_x)
            reduced = buffer("xy", (out_h, out_w, count))
            kernels.reduce_along_y(reduced_x, *along_y, reduced)
            wrapped = np.empty((out_h, out_w, count), np.uint8)
            kernels.to_uint8_wrapped(reduced, wrapped)
            levels[level + 1][:, :, start : start + count] = wrapped
            source, divisor = reduced, 1.0
    return levels


def upsample_offsets(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``round(imresize(flow, size, 'bicubic') * 2)``: the next finer level's window centres.

    ``flow``: ``(B, 2, h, w)``; returns ``(B, 2, H, W)`` int32.
    """
    upsampled = matlab.imresize(flow.double(), out_size=size)
    return matlab.matlab_round(upsampled * 2).to(torch.int32)
