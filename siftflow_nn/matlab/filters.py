"""MATLAB's Gaussian filtering and ``impyramid(..., 'reduce')``, separably, with replicated borders."""

import numpy as np
import torch

from siftflow_nn._checks import as_int, check_planes
from siftflow_nn.matlab import _cpu
from siftflow_nn.matlab._arguments import positive_number
from siftflow_nn.matlab.rounding import as_double, back_to_class

__all__ = ["gaussian_filter", "gaussian_taps", "impyramid_reduce"]

# impyramid's 5-tap kernel [1/4 - a/2, 1/4, a, 1/4, 1/4 - a/2] with Burt and Adelson's a = 0.375.
IMPYRAMID_TAPS = (0.0625, 0.25, 0.375, 0.25, 0.0625)


def gaussian_taps(size: int, sigma: float) -> np.ndarray:
    """The 1-D factor of MATLAB's ``fspecial('gaussian', size, sigma)`` (which is its outer
    product with itself): ``exp(-x^2 / (2 sigma^2))`` normalised to sum 1, float64.

    Example:
        >>> taps = gaussian_taps(5, 0.67)
        >>> bool(np.allclose(np.outer(taps, taps).sum(), 1))
        True
    """
    steps = np.arange(size) - (size - 1) / 2
    taps = np.exp(-(steps**2) / (2 * sigma * sigma))
    return taps / taps.sum()


def _filter_along(values: torch.Tensor, taps, dim: int) -> torch.Tensor:
    """Correlate along ``dim`` (-1 or -2) with odd-length ``taps``, borders replicated, the taps
    summed in order."""
    radius = (len(taps) - 1) // 2
    length = values.shape[dim]
    padding = (radius, radius, 0, 0) if dim == -1 else (0, 0, radius, radius)
    padded = torch.nn.functional.pad(values.reshape(-1, 1, *values.shape[-2:]), padding, "replicate")
    padded = padded.reshape(*values.shape[:-2], *padded.shape[-2:])  # pad needs 4-D: batch dims folded
    out = None
    for index, tap in enumerate(taps):
        term = padded.narrow(dim, index, length) * float(tap)
        out = term if out is None else out.add_(term)
    return out


def gaussian_filter(image: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """MATLAB's ``imfilter(image, fspecial('gaussian', size, sigma), 'same', 'replicate')``.

    Separably, along the rows (x) first, then the columns. MATLAB does not document its summation
    order; the separable one differs from a 2-D tap-by-tap sum by an ulp or so, which a later
    rounding to an integer sees only at exact half-integers (never on the reference data).

    Args:
        image: ``(..., H, W)``, uint8 or uint16 (rounded back to its class, as imfilter does) or
            floating point.
        size, sigma: the kernel's (odd) size and its standard deviation (positive, finite).

    Returns:
        ``(..., H, W)`` of the input's dtype.

    Example:
        >>> gaussian_filter(torch.full((1, 4, 4), 9, dtype=torch.uint8), 7, 1.0).unique().tolist()
        [9]
    """
    size = as_int(size, "size", "a positive odd int")
    if size <= 0 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd int, got {size}")
    taps = gaussian_taps(size, positive_number(sigma, "sigma"))
    if image.dtype == torch.uint8 and _cpu.compiled(check_planes(image)):
        planes = _cpu.planes(image)
        out = np.empty_like(planes)
        for plane, target in zip(planes, out):
            _cpu.kernels.filter_uint8(plane, taps, target)
        return _cpu.from_planes(out, image)
    values, integer_class = as_double(check_planes(image))
    return back_to_class(_filter_along(_filter_along(values, taps, -1), taps, -2), integer_class)


def impyramid_reduce(image: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``impyramid(image, 'reduce')``: the 5-tap kernel ``[1 4 6 4 1] / 16``, replicated
    borders, every other sample kept (output ``ceil(H / 2) x ceil(W / 2)``).

    Down the columns first, then along the rows; uint8 and uint16 input is rounded back to its class
    after each, as MATLAB's ``imfilter`` calls in impyramid do.

    Args:
        image: ``(..., H, W)``, uint8, uint16 or floating point.

    Returns:
        ``(..., ceil(H / 2), ceil(W / 2))`` of the input's dtype.

    Example:
        >>> impyramid_reduce(torch.arange(5.0).expand(5, 5))[0].tolist()
        [0.375, 2.0, 3.625]
    """
    if image.dtype == torch.uint8 and _cpu.compiled(check_planes(image)):  # [1 4 6 4 1] / 16: exact in integers
        planes = _cpu.planes(image)
        (rows, row_taps), (columns, column_taps) = (_reduce_table(length) for length in planes.shape[1:])
        out = np.empty((planes.shape[0], rows.shape[0], columns.shape[0]), np.uint8)
        for plane, target in zip(planes, out):
            reduced_rows = np.empty((rows.shape[0], plane.shape[1]), np.uint8)
            _cpu.kernels.rows_dyadic_uint8(plane, rows, row_taps, 4, reduced_rows)
            _cpu.kernels.columns_dyadic_uint8(reduced_rows, columns, column_taps, 4, target)
        return _cpu.from_planes(out, image)
    values, integer_class = as_double(check_planes(image))
    values = back_to_class(_filter_along(values, IMPYRAMID_TAPS, -2)[..., ::2, :], integer_class)
    values = values if integer_class is None else values.double()
    return back_to_class(_filter_along(values, IMPYRAMID_TAPS, -1)[..., ::2], integer_class)


def _reduce_table(length: int) -> tuple[np.ndarray, np.ndarray]:
    """impyramid's reduce along one axis as a table: output ``i`` takes the inputs ``2 i - 2 ..
    2 i + 2`` (replicated at the borders) with the taps times 16."""
    positions = 2 * np.arange((length + 1) // 2)[:, None] + np.arange(-2, 3)
    taps = np.tile(np.round(np.array(IMPYRAMID_TAPS) * 16).astype(np.int32), (positions.shape[0], 1))
    return np.clip(positions, 0, length - 1), taps
