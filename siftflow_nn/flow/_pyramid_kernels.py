"""Compiled (numba) pyramid steps for SIFT Flow, on ``(H, W, C)`` arrays, channels last.

The same filters and summation orders as ``pyramid.descriptor_pyramid`` (the portable torch
version, which the tests hold these to bit for bit), with the inner loops over contiguous memory.
"""

import numba
import numpy as np


@numba.njit(cache=True, parallel=True)
def reduce_along_x(image, indices, weights, divisor, out):
    """``out[y, x'] = sum_t weights[x', t] * image[y, indices[x', t]] / divisor``, the taps in order.

    ``image`` ``(H, W, C)`` uint8 or float64, may be a strided view (a range of channels of a
    larger array); ``divisor = 255`` is MATLAB's ``im2double`` of a uint8 image. ``out``
    ``(H, W', C)`` float64."""
    height, width, channels = image.shape
    for y in numba.prange(height):
        row = np.empty(width * channels)  # the row as contiguous float64
        for x in range(width):
            for c in range(channels):
                row[x * channels + c] = image[y, x, c] / divisor
        for x in range(indices.shape[0]):
            target = out[y, x]
            target[:] = 0.0
            for tap in range(indices.shape[1]):
                weight = weights[x, tap]
                source = row[indices[x, tap] * channels : (indices[x, tap] + 1) * channels]
                for c in range(channels):
                    target[c] += weight * source[c]


@numba.njit(cache=True, parallel=True)
def reduce_along_y(image, indices, weights, out):
    """``out[y'] = sum_t weights[y', t] * image[indices[y', t]]``, whole rows at a time."""
    for y in numba.prange(indices.shape[0]):
        target = out[y].reshape(-1)
        target[:] = 0.0
        for tap in range(indices.shape[1]):
            weight = weights[y, tap]
            source = image[indices[y, tap]].reshape(-1)
            for index in range(target.shape[0]):  # a plain loop index over slices: vectorised
                target[index] += weight * source[index]


@numba.njit(cache=True, parallel=True)
def to_uint8_wrapped(image, out):
    """The mex files' ``(unsigned char)(v * 255)`` on x86: truncated to an int, then its low byte
    (an undershoot below 0 wraps to 255, 254, ...; 256 to 0). Writes into ``out`` (uint8)."""
    flat_in, flat_out = image.reshape(-1), out.reshape(-1)
    for index in numba.prange(flat_in.shape[0]):
        flat_out[index] = np.uint8(np.int32(flat_in[index] * 255) & 0xFF)
