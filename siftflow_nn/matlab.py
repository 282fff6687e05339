"""MATLAB's image operations as the original SIFT Flow scripts call them, in float64.

Each one follows MATLAB's documented algorithm, with the summation order of the original's C++
re-creation (``../shared/bpflow``), so that results agree to the last bit where a later truncation
to an integer can tell the difference:

- ``resize_weights`` / ``imresize``: ``imresize(..., 'bicubic')``, the cubic kernel with a = -0.5,
  widened by ``1 / scale`` when shrinking (antialiasing), mirrored ("symmetric") borders, one
  dimension at a time, the one with the smaller scale first (rows on ties);
- ``gaussian_filter``: ``imfilter(im, fspecial('gaussian', n, sigma), 'same', 'replicate')``,
  separably;
- ``matlab_round``: ``round``, half away from zero.
"""

import math

import numpy as np
import torch

__all__ = ["apply_taps", "gaussian_filter", "gaussian_taps", "imresize", "matlab_round", "resize_weights"]


def matlab_round(tensor: torch.Tensor) -> torch.Tensor:
    """Round half away from zero, as MATLAB (``torch.round`` rounds half to even).

    Example:
        >>> matlab_round(torch.tensor([-2.5, -0.5, 0.5, 1.5, 2.5])).tolist()
        [-3.0, -1.0, 1.0, 2.0, 3.0]
    """
    return torch.sign(tensor) * torch.floor(tensor.abs() + 0.5)


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
    """MATLAB's ``imresize(image, scale or [h w], 'bicubic')`` on ``(..., H, W)`` float64.

    Example:
        >>> imresize(torch.ones(1, 1, 6, 8, dtype=torch.float64), 0.5).shape
        torch.Size([1, 1, 3, 4])
    """
    passes, _ = resize_plan(tuple(image.shape[-2:]), scale, out_size)
    for dim, indices, weights in passes:
        image = apply_taps(image, image.dim() - 2 + dim, indices, weights)
    return image


def apply_taps(image: torch.Tensor, dim: int, indices: np.ndarray, weights: np.ndarray) -> torch.Tensor:
    """``out[..., i, ...] = sum_t weights[i, t] * image[..., indices[i, t], ...]`` along ``dim``, the
    taps summed in order (a resize or filter table, ``(out_length, taps)`` each)."""
    indices = torch.from_numpy(indices).to(image.device)
    weights = torch.from_numpy(weights).to(image.device, image.dtype)
    shape = [1] * image.dim()
    shape[dim] = -1
    out = None
    for tap in range(indices.shape[1]):
        term = image.index_select(dim, indices[:, tap]) * weights[:, tap].view(shape)
        out = term if out is None else out.add_(term)
    return out


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


def gaussian_filter(image: torch.Tensor, size: int, sigma: float) -> torch.Tensor:
    """MATLAB's ``imfilter(image, fspecial('gaussian', size, sigma), 'same', 'replicate')`` on
    ``(B, C, H, W)`` float64, separably: along the rows (x) first, then the columns.

    MATLAB does not document its summation order; the separable one differs from a 2-D tap-by-tap
    sum by an ulp or so, which a later truncation to uint8 sees only at exact integer boundaries
    (never on the reference pairs or the Sintel frames).
    """
    taps = gaussian_taps(size, sigma)
    radius = (size - 1) // 2
    height, width = image.shape[-2:]
    padded = torch.nn.functional.pad(image, (radius, radius, 0, 0), "replicate")
    rows = None
    for j in range(size):
        term = padded[..., j : j + width] * float(taps[j])
        rows = term if rows is None else rows.add_(term)
    padded = torch.nn.functional.pad(rows, (0, 0, radius, radius), "replicate")
    out = None
    for i in range(size):
        term = padded[..., i : i + height, :] * float(taps[i])
        out = term if out is None else out.add_(term)
    return out
