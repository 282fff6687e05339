"""The compiled CPU versions of the MATLAB functions the DocUNet metrics spend their time in
(C++ in ``csrc/matlab.cpp``), with the signatures the torch paths' callers use.

Each gives the bytes (for ``ssim_mean``, the values, the same on any number of threads) of its torch
twin, which stays the portable reference and the one a GPU runs: the same products summed in the same
order, and taps that are multiples of ``2^-bits`` applied in integers, where every float64 sum is
exact.
"""

import numpy as np

from siftflow_nn._native import kernels, threads

if kernels is None:
    raise ImportError("the compiled kernels are not built")


def _table(indices: np.ndarray, values: np.ndarray, dtype) -> tuple[np.ndarray, np.ndarray]:
    return np.ascontiguousarray(indices, np.int64), np.ascontiguousarray(values, dtype)


def ssim_mean(image1: np.ndarray, image2: np.ndarray, taps: np.ndarray, c1: float, c2: float) -> float:
    """The mean of MATLAB's SSIM map of two float64 ``(H, W)`` images: every local statistic filtered
    with the separable ``taps`` (replicated borders, along x then y, taps summed in order)."""
    return kernels.ssim_mean(image1, image2, np.ascontiguousarray(taps, np.float64), c1, c2, threads())


def filter_uint8(image: np.ndarray, taps: np.ndarray, out: np.ndarray) -> None:
    """MATLAB's ``imfilter`` of a uint8 ``(H, W)`` image with the separable float64 ``taps``
    (replicated borders, along x then y, taps summed in order), rounded to uint8 into ``out``."""
    kernels.filter_uint8(image, np.ascontiguousarray(taps, np.float64), out, threads())


def rows_dyadic_uint8(image: np.ndarray, indices: np.ndarray, taps: np.ndarray, bits: int, out: np.ndarray) -> None:
    """``out[i] = clamp(round(sum_t taps[i, t] image[indices[i, t]] / 2^bits))``, whole rows of a uint8
    ``(H, W)`` image (a resize or filter along y whose weights are multiples of ``2^-bits``)."""
    kernels.rows_dyadic_uint8(image, *_table(indices, taps, np.int32), bits, out, threads())


def columns_dyadic_uint8(image: np.ndarray, indices: np.ndarray, taps: np.ndarray, bits: int, out: np.ndarray) -> None:
    """``rows_dyadic_uint8`` along x: ``out[:, i]`` from the columns ``indices[i]`` of ``image``."""
    kernels.columns_dyadic_uint8(image, *_table(indices, taps, np.int32), bits, out, threads())


def rows_float(image: np.ndarray, indices: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """``out[i] = sum_t weights[i, t] image[indices[i, t]]`` over whole rows of a float64 ``(H, W)``
    image, the taps summed in order (a resize along y)."""
    kernels.rows_float(image, *_table(indices, weights, np.float64), out, threads())


def columns_float(image: np.ndarray, indices: np.ndarray, weights: np.ndarray, out: np.ndarray) -> None:
    """``rows_float`` along x."""
    kernels.columns_float(image, *_table(indices, weights, np.float64), out, threads())
