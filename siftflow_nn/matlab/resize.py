"""MATLAB's ``imresize(image, scale or [rows cols], 'bicubic')``, as a table of taps per axis.

The cubic kernel with a = -0.5, widened by ``1 / scale`` when shrinking (antialiasing), mirrored
("symmetric") borders, one dimension at a time, the one with the smaller scale first (rows on
ties). Each output sample's taps are summed in order, as the original's C++ re-creation does
(``../shared/bpflow``), so that results agree to the last bit where a later truncation to an
integer can tell. On uint8 and uint16 images MATLAB rounds back to the class after each pass, and
so do we.
"""

import math

import numpy as np
import torch

from siftflow_nn._checks import check_planes, check_positive_int, describe_value
from siftflow_nn.matlab import _cpu
from siftflow_nn.matlab._arguments import positive_number
from siftflow_nn.matlab.rounding import as_double, back_to_class

__all__ = ["apply_taps", "dyadic_taps", "imresize", "resize_plan", "resize_weights"]


def _cubic(x: np.ndarray) -> np.ndarray:
    """MATLAB imresize's cubic kernel (Keys, a = -0.5)."""
    ax = np.abs(x)
    ax2 = ax * ax
    ax3 = ax2 * ax
    inner = (1.5 * ax3 - 2.5 * ax2 + 1) * (ax <= 1)
    outer = (-0.5 * ax3 + 2.5 * ax2 - 4 * ax + 2) * ((ax > 1) & (ax <= 2))
    return inner + outer


def resize_weights(in_length: int, out_length: int, scale: float, antialias: bool = True):
    """MATLAB imresize's ``contributions``: per output sample, the input indices and their weights.

    Args:
        in_length, out_length: sizes along the dimension.
        scale: ``out / in`` as MATLAB uses it (the scale argument when one was given).
        antialias: widen the kernel by ``1 / scale`` when shrinking (MATLAB's default).

    Returns:
        ``(indices, weights)``, both ``(out_length, P)``: 0-based int64 indices (mirrored at the
        borders) and float64 weights that sum to 1 per row.

    Example:
        >>> indices, weights = resize_weights(4, 2, 0.5)
        >>> indices.shape, bool(np.allclose(weights.sum(1), 1))
        ((2, 10), True)
    """
    kernel_width = 4.0
    shrink = scale < 1 and antialias
    if shrink:
        kernel_width /= scale
    taps = math.ceil(kernel_width) + 2
    u = np.arange(1, out_length + 1, dtype=np.float64) / scale + 0.5 * (1 - 1 / scale)
    left = np.floor(u - kernel_width / 2)
    positions = left[:, None] + np.arange(taps)
    distance = u[:, None] - positions
    weights = scale * _cubic(scale * distance) if shrink else _cubic(distance)
    total = np.zeros(out_length)
    for tap in range(taps):  # summed tap by tap, as the C++ re-creation
        total += weights[:, tap]
    weights = weights / total[:, None]
    mirrored = np.mod(positions.astype(np.int64) - 1, 2 * in_length)
    indices = np.where(mirrored < in_length, mirrored, 2 * in_length - 1 - mirrored)
    return indices, weights


def dyadic_taps(weights: np.ndarray, bits: int = 8) -> np.ndarray | None:
    """``weights * 2^bits`` as int32 when every weight is a multiple of ``2^-bits``, else ``None``.

    MATLAB's taps at the scale 0.5 are (``[-3 -9 29 111 111 29 -9 -3] / 256`` with antialiasing):
    resizing a uint8 image by them is then exact integer arithmetic, whatever the summation order.
    ``weights``: an ``(out_length, taps)`` table (``resize_weights``'); the result has its shape.
    ``None`` too where a uint8 row's sum could overflow int32.

    Example:
        >>> dyadic_taps(resize_weights(8, 4, 0.5)[1])[0].tolist()
        [0, -3, -9, 29, 111, 111, 29, -9, -3, 0]
        >>> dyadic_taps(resize_weights(9, 4, 0.45)[1]) is None
        True
    """
    if not (isinstance(weights, np.ndarray) and weights.ndim == 2 and np.issubdtype(weights.dtype, np.floating)):
        raise ValueError(f"weights must be an (out_length, taps) float array, got {describe_value(weights)}")
    if not (isinstance(bits, int) and not isinstance(bits, bool) and 1 <= bits <= 23):
        raise ValueError(f"bits must be an int from 1 to 23, got {bits!r}")
    scaled = weights * 2.0**bits
    if not np.array_equal(scaled, np.round(scaled)) or np.abs(scaled).sum(axis=1).max() * 255 >= 2**31:
        return None
    return scaled.astype(np.int32)


def resize_plan(size: tuple[int, int], scale: float | None = None, out_size: tuple[int, int] | None = None):
    """The passes of ``imresize`` on an ``H x W`` image: ``[(dim, indices, weights), ...]`` and the
    output size. Give ``scale`` (output ``ceil(scale * size)``, every pass at that scale) or
    ``out_size`` (each dimension at ``out / in``)."""
    if out_size is None:
        out_size = tuple(math.ceil(scale * length) for length in size)
        scales = (scale, scale)
    else:
        scales = tuple(out / length for out, length in zip(out_size, size))
    order = sorted(range(2), key=lambda dim: scales[dim])  # stable: rows first on ties
    return [(dim, *resize_weights(size[dim], out_size[dim], scales[dim])) for dim in order], tuple(out_size)


def imresize(image: torch.Tensor, scale: float | None = None, out_size: tuple[int, int] | None = None) -> torch.Tensor:
    """MATLAB's ``imresize(image, scale, 'bicubic')`` or ``imresize(image, out_size, 'bicubic')``.

    Args:
        image: ``(..., H, W)``, uint8 or uint16 (rounded back to its class after each pass, as
            MATLAB) or floating point (computed in its dtype).
        scale: output ``ceil(scale * H) x ceil(scale * W)`` (a positive finite number: Python,
            NumPy or a 0-d tensor); or
        out_size: ``(rows, cols)``, two positive ints, each axis at its own scale ``out / in``.

    Returns:
        ``(..., rows, cols)`` of the input's dtype.

    Example:
        >>> imresize(torch.ones(1, 1, 6, 8, dtype=torch.float64), 0.5).shape
        torch.Size([1, 1, 3, 4])
        >>> imresize(torch.full((5, 5), 7, dtype=torch.uint8), out_size=(2, 3)).tolist()
        [[7, 7, 7], [7, 7, 7]]
    """
    check_planes(image)
    if (scale is None) == (out_size is None):
        raise ValueError("give one of scale and out_size")
    if scale is not None:
        scale = positive_number(scale, "scale")
    else:
        out_size = _size_pair(out_size)
    passes, _ = resize_plan(tuple(image.shape[-2:]), scale, out_size)
    if _cpu.compiled(image):
        return _cpu.from_planes(_resize_planes(_cpu.planes(image), passes), image)
    values, integer_class = as_double(image)
    for dim, indices, weights in passes:
        values = apply_taps(values, values.dim() - 2 + dim, indices, weights)
        if integer_class is not None:
            values = back_to_class(values, integer_class).double()
    return back_to_class(values, integer_class)


def _size_pair(out_size) -> tuple[int, int]:
    """``out_size`` as two positive ints (Python, NumPy or 0-d tensor integers)."""
    if isinstance(out_size, (str, bytes)) or not hasattr(out_size, "__len__") or len(out_size) != 2:
        raise ValueError(f"out_size must be two positive ints (rows, cols), got {out_size!r}")
    return tuple(check_positive_int(length, f"out_size[{index}]") for index, length in enumerate(out_size))


def _resize_planes(planes: np.ndarray, passes) -> np.ndarray:
    """``imresize``'s passes on ``(N, H, W)`` uint8 or float64 planes with the compiled kernels:
    uint8 rounded after each pass, in integers where the weights allow (``dyadic_taps``)."""
    kernels = _cpu.kernels
    for dim, indices, weights in passes:
        size = list(planes.shape)
        size[1 + dim] = indices.shape[0]
        out = np.empty(size, planes.dtype)
        taps = dyadic_taps(weights) if planes.dtype == np.uint8 else None
        for plane, target in zip(planes, out):
            if taps is not None:
                (kernels.rows_dyadic_uint8 if dim == 0 else kernels.columns_dyadic_uint8)(
                    plane, indices, taps, 8, target
                )
                continue
            values = plane.astype(np.float64) if planes.dtype == np.uint8 else plane
            result = np.empty(target.shape) if planes.dtype == np.uint8 else target
            (kernels.rows_float if dim == 0 else kernels.columns_float)(values, indices, weights, result)
            if planes.dtype == np.uint8:  # MATLAB's uint8(): half away from zero, saturated
                target[...] = np.clip(np.floor(result + 0.5), 0, 255)
        planes = out
    return planes


def apply_taps(image: torch.Tensor, dim: int, indices: np.ndarray, weights: np.ndarray) -> torch.Tensor:
    """``out[..., i, ...] = sum_t weights[i, t] * image[..., indices[i, t], ...]`` along ``dim``, the
    taps summed in order (a resize or filter table, ``(out_length, taps)`` each)."""
    # torch.tensor copies: the tables may be read-only (cached), which from_numpy warns about
    indices = torch.tensor(indices, device=image.device)
    weights = torch.tensor(weights, device=image.device, dtype=image.dtype)
    shape = [1] * image.dim()
    shape[dim] = -1
    out = None
    for tap in range(indices.shape[1]):
        term = image.index_select(dim, indices[:, tap]) * weights[:, tap].view(shape)
        out = term if out is None else out.add_(term)
    return out
