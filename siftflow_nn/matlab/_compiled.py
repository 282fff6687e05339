"""Compiled (numba) CPU versions of the MATLAB functions that the DocUNet metrics spend their time in.

Each gives the bytes (or, for ``ssim_mean``, the per-pixel values) of its torch twin, which stays
the portable reference and the one a GPU runs: the same products summed in the same order, and
taps that are multiples of ``2^-bits`` applied in integers, where every float64 sum is exact.
Rows of output run in parallel, each block of rows keeping its filtered input rows in a ring
(one pass over memory instead of one per tap).
"""

import numba
import numpy as np

_ROWS_PER_BLOCK = 64
_i32 = np.int32  # numba widens int32 arithmetic to int64: the casts keep vector code 32 bits wide


@numba.njit(cache=True, parallel=True)
def ssim_mean(image1, image2, taps, c1, c2):
    """The mean of MATLAB's SSIM map of two float64 ``(H, W)`` images: every local statistic
    filtered with the separable ``taps`` (replicated borders, along x then y, taps summed in
    order), then ``(2 mu_x mu_y + c1) (2 cov + c2) / ((mu_x^2 + mu_y^2 + c1) (var_x + var_y + c2))``."""
    height, width = image1.shape
    count = taps.shape[0]
    radius = count // 2
    blocks = (height + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK
    sums = np.zeros(blocks)
    for block in numba.prange(blocks):
        first = block * _ROWS_PER_BLOCK
        last = min(height, first + _ROWS_PER_BLOCK)
        padded = np.empty((5, width + 2 * radius))  # x, y, x^2, y^2, x y of one row, borders replicated
        ring = np.empty((count, 5, width))  # the last ``count`` rows filtered along x
        column = np.empty((5, width))
        total = 0.0
        for r in range(first - radius, last + radius):
            source = min(max(r, 0), height - 1)
            for i in range(width + 2 * radius):
                a, b = (
                    image1[source, min(max(i - radius, 0), width - 1)],
                    image2[source, min(max(i - radius, 0), width - 1)],
                )
                padded[0, i], padded[1, i], padded[2, i], padded[3, i], padded[4, i] = a, b, a * a, b * b, a * b
            row = ring[(r - first + radius) % count]
            for q in range(5):
                for i in range(width):
                    row[q, i] = taps[0] * padded[q, i]
                for t in range(1, count):
                    for i in range(width):
                        row[q, i] = row[q, i] + taps[t] * padded[q, i + t]
            y = r - radius  # the output row whose last input row this is
            if y < first:
                continue
            for q in range(5):
                above = ring[(y - first) % count]
                for i in range(width):
                    column[q, i] = taps[0] * above[q, i]
                for t in range(1, count):
                    filtered = ring[(y - first + t) % count]
                    for i in range(width):
                        column[q, i] = column[q, i] + taps[t] * filtered[q, i]
            for i in range(width):
                mean_x, mean_y = column[0, i], column[1, i]
                mean_xy, mean_xx, mean_yy = mean_x * mean_y, mean_x * mean_x, mean_y * mean_y
                variance_x, variance_y = column[2, i] - mean_xx, column[3, i] - mean_yy
                covariance = column[4, i] - mean_xy
                numerator = (2 * mean_xy + c1) * (2 * covariance + c2)
                total += numerator / ((mean_xx + mean_yy + c1) * (variance_x + variance_y + c2))
        sums[block] = total
    return sums.sum() / (height * width)


@numba.njit(cache=True, parallel=True)
def filter_uint8(image, taps, out):
    """MATLAB's ``imfilter`` of a uint8 ``(H, W)`` image with the separable float64 ``taps``
    (replicated borders, along x then y, taps summed in order), rounded to uint8 into ``out``."""
    height, width = image.shape
    count = taps.shape[0]
    radius = count // 2
    for block in numba.prange((height + _ROWS_PER_BLOCK - 1) // _ROWS_PER_BLOCK):
        first = block * _ROWS_PER_BLOCK
        last = min(height, first + _ROWS_PER_BLOCK)
        padded = np.empty(width + 2 * radius)
        ring = np.empty((count, width))
        column = np.empty(width)
        for r in range(first - radius, last + radius):
            source = min(max(r, 0), height - 1)
            for i in range(width + 2 * radius):
                padded[i] = image[source, min(max(i - radius, 0), width - 1)]
            row = ring[(r - first + radius) % count]
            for i in range(width):
                row[i] = taps[0] * padded[i]
            for t in range(1, count):
                for i in range(width):
                    row[i] = row[i] + taps[t] * padded[i + t]
            y = r - radius
            if y < first:
                continue
            above = ring[(y - first) % count]
            for i in range(width):
                column[i] = taps[0] * above[i]
            for t in range(1, count):
                filtered = ring[(y - first + t) % count]
                for i in range(width):
                    column[i] = column[i] + taps[t] * filtered[i]
            for i in range(width):
                out[y, i] = np.uint8(min(max(np.floor(column[i] + 0.5), 0.0), 255.0))


@numba.njit(cache=True, inline="always")
def dyadic_row(image, indices, taps, bits):
    """``clamp(round(sum_t taps[t] image[indices[t]] / 2^bits), 0, 255)``: one output row (int32)
    from rows of a uint8 ``(H, W)`` image, for weights that are multiples of ``2^-bits``
    (``taps``: the weights times ``2^bits``); exact in int32, so MATLAB's float64 sum rounded."""
    width = image.shape[1]
    total = np.zeros(width, np.int32)
    for t in range(indices.shape[0]):
        weight = _i32(taps[t])
        if weight == 0:
            continue
        source = image[indices[t]]
        for i in range(width):
            total[i] = _i32(total[i] + _i32(weight * _i32(source[i])))
    half = _i32(1 << (bits - 1))
    for i in range(width):
        total[i] = min(max(_i32(_i32(total[i] + half) >> bits), _i32(0)), _i32(255))
    return total


@numba.njit(cache=True, parallel=True)
def rows_dyadic_uint8(image, indices, taps, bits, out):
    """``out[i] = dyadic_row(image, indices[i], taps[i], bits)``, whole rows of a uint8 ``(H, W)``
    image (a resize or filter along y whose weights are multiples of ``2^-bits``)."""
    for y in numba.prange(indices.shape[0]):
        row = dyadic_row(image, indices[y], taps[y], bits)
        for i in range(row.shape[0]):
            out[y, i] = np.uint8(row[i])


@numba.njit(cache=True, parallel=True)
def columns_dyadic_uint8(image, indices, taps, bits, out):
    """``rows_dyadic_uint8`` along x: ``out[:, i]`` from the columns ``indices[i]`` of ``image``."""
    half = _i32(1 << (bits - 1))
    for y in numba.prange(image.shape[0]):
        source = image[y]
        for i in range(indices.shape[0]):
            total = _i32(0)
            for t in range(indices.shape[1]):
                total = _i32(total + _i32(_i32(taps[i, t]) * _i32(source[indices[i, t]])))
            out[y, i] = np.uint8(min(max(_i32(_i32(total + half) >> bits), _i32(0)), _i32(255)))


@numba.njit(cache=True, parallel=True)
def rows_float(image, indices, weights, out):
    """``out[i] = sum_t weights[i, t] image[indices[i, t]]`` over whole rows of a float64
    ``(H, W)`` image, the taps summed in order (a resize along y)."""
    width = image.shape[1]
    for y in numba.prange(indices.shape[0]):
        target = out[y]
        source = image[indices[y, 0]]
        for i in range(width):
            target[i] = source[i] * weights[y, 0]
        for t in range(1, indices.shape[1]):
            source, weight = image[indices[y, t]], weights[y, t]
            for i in range(width):
                target[i] = target[i] + source[i] * weight


@numba.njit(cache=True, parallel=True)
def columns_float(image, indices, weights, out):
    """``rows_float`` along x."""
    for y in numba.prange(image.shape[0]):
        source, target = image[y], out[y]
        for i in range(indices.shape[0]):
            total = source[indices[i, 0]] * weights[i, 0]
            for t in range(1, indices.shape[1]):
                total = total + source[indices[i, t]] * weights[i, t]
            target[i] = total
