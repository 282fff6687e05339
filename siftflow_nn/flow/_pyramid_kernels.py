"""Compiled (numba) pyramid steps for SIFT Flow, on ``(H, W, C)`` arrays, channels last.

The same filters and summation orders as ``pyramid.descriptor_pyramid`` (the portable torch
version, which the tests hold these to bit for bit), with the inner loops over contiguous memory.
Indices that numba cannot tell are non-negative are cast to ``np.uintp``: numba then skips its
wrap-around test for negative indices, which otherwise keeps LLVM from vectorising the loop.
"""

import numba
import numpy as np

from siftflow_nn.matlab._compiled import dyadic_row


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
                row[np.uintp(x * channels + c)] = image[y, x, c] / divisor
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


# --- the 2010 driver's step on uint8 descriptors: uint8 between passes, so no float64 image ------

_ROWS_PER_BLOCK = 16


@numba.njit(cache=True, parallel=True)
def filter_to_uint8(image, taps, out):
    """``out = uint8(filter_y(filter_x(image)))``: MATLAB's ``imfilter`` of a uint8 image with the
    separable 5-tap kernel ``taps`` (x then y, replicated borders, taps summed in order), rounded.

    ``image`` ``(H, W, C)`` uint8 (may be a strided view), ``out`` ``(H, W, C)`` uint8. Blocks of
    rows run in parallel; each keeps its last 5 rows filtered along x in a ring, and sums the 5
    taps of a row in one expression (one pass over memory instead of one per tap)."""
    height, width, channels = image.shape
    w0, w1, w2, w3, w4 = taps[0], taps[1], taps[2], taps[3], taps[4]
    row_length = width * channels
    for block in numba.prange((height + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK):
        first = block * _ROWS_PER_BLOCK
        last = min(height, first + _ROWS_PER_BLOCK)
        ring = np.empty((5, row_length))
        padded = np.empty((width + 4) * channels)  # the row as float64, borders replicated
        for r in range(first - 2, last + 2):
            source = image[min(max(r, 0), height - 1)]
            for x in range(-2, width + 2):
                column = min(max(x, 0), width - 1)
                for c in range(channels):
                    padded[np.uintp((x + 2) * channels + c)] = source[column, c]
            row = ring[(r - first + 2) % 5]
            p0, p1, p2 = padded[:row_length], padded[channels:], padded[2 * channels :]
            p3, p4 = padded[3 * channels :], padded[4 * channels :]
            for i in range(row_length):
                row[i] = w0 * p0[i] + w1 * p1[i] + w2 * p2[i] + w3 * p3[i] + w4 * p4[i]
            y = r - 2  # the output row whose last input row this is
            if y >= first:
                r0, r1, r2 = ring[(y - first) % 5], ring[(y - first + 1) % 5], ring[(y - first + 2) % 5]
                r3, r4 = ring[(y - first + 3) % 5], ring[(y - first + 4) % 5]
                flat = out[y].reshape(-1)
                for i in range(row_length):
                    value = w0 * r0[i] + w1 * r1[i] + w2 * r2[i] + w3 * r3[i] + w4 * r4[i]
                    flat[i] = np.uint8(min(max(np.floor(value + 0.5), 0.0), 255.0))


_i32 = np.int32  # numba widens int32 arithmetic to int64: the casts keep vector code 32 bits wide


@numba.njit(cache=True, parallel=True)
def resize_to_uint8_dyadic(image, y_indices, y_taps, x_indices, x_taps, bits, out):
    """MATLAB's ``imresize`` of a uint8 image: along y (one table row per output row), rounded to
    uint8, then along x, rounded again; for weights that are multiples of ``2^-bits`` (``y_taps``,
    ``x_taps``: the weights times ``2^bits``, int32), in integers.

    MATLAB's bicubic taps are such multiples at the scale 0.5 (``[-3 -9 29 111 111 29 -9 -3] / 256``
    with antialiasing): every product and partial sum of MATLAB's float64 sum is then exact, so
    ``(sum + 2^(bits - 1)) >> bits`` is its ``floor(value + 0.5)``, and the bytes are the same.
    ``image`` ``(H, W, C)`` uint8, ``out`` ``(H', W', C)`` uint8; output rows in parallel."""
    height, width, channels = image.shape
    rows = image.reshape(height, width * channels)  # along y, the channels are more columns
    half = _i32(1 << (bits - 1))
    for y in numba.prange(y_indices.shape[0]):
        along_y = dyadic_row(rows, y_indices[y], y_taps[y], bits)
        target = np.zeros(channels, np.int32)
        for x in range(x_indices.shape[0]):
            target[:] = 0
            for tap in range(x_indices.shape[1]):
                weight = _i32(x_taps[x, tap])
                if weight == 0:
                    continue
                start = x_indices[x, tap] * channels
                for c in range(channels):
                    target[c] = _i32(target[c] + _i32(weight * along_y[np.uintp(start + c)]))
            for c in range(channels):
                out[y, x, c] = np.uint8(min(max(_i32(_i32(target[c] + half) >> bits), _i32(0)), _i32(255)))
