"""MATLAB's ``ssim(A, ref)`` with its defaults: the mean structural similarity of two images."""

import numpy as np
import torch

from siftflow_nn._checks import check_planes
from siftflow_nn._threads import numba_threads
from siftflow_nn.matlab import _cpu
from siftflow_nn.matlab.filters import gaussian_filter, gaussian_taps

__all__ = ["ssim"]

_WINDOW_SIZE, _WINDOW_SIGMA = 11, 1.5  # fspecial('gaussian', 2 * ceil(3 * 1.5) + 1, 1.5)
_K1, _K2 = 0.01, 0.03


def ssim(image1: torch.Tensor, image2: torch.Tensor, data_range: float | None = None) -> torch.Tensor:
    """MATLAB's ``ssim(image1, image2)``: Wang et al.'s SSIM with an 11 x 11 Gaussian window
    (sigma 1.5, replicated borders), ``K = (0.01, 0.03)``, exponents 1, averaged over the map.

    Args:
        image1, image2: ``(..., H, W)`` of one shape and dtype: uint8 (computed in float64) or
            floating point (in its dtype).
        data_range: ``L``; by default the dtype's range, as MATLAB: 255 for uint8, 1 for floats.

    Returns:
        ``(...)``: one value per image (and channel).

    Example:
        >>> image = torch.rand(2, 1, 16, 16, dtype=torch.float64)
        >>> ssim(image, image).flatten().tolist()
        [1.0, 1.0]
    """
    check_planes(image1, "image1"), check_planes(image2, "image2")
    if image1.shape != image2.shape or image1.dtype != image2.dtype:
        raise ValueError(
            f"image1 and image2 must have one shape and dtype, got {tuple(image1.shape)} {image1.dtype} "
            f"and {tuple(image2.shape)} {image2.dtype}"
        )
    if data_range is None:
        data_range = 255.0 if image1.dtype == torch.uint8 else 1.0
    elif not (isinstance(data_range, (int, float)) and data_range > 0):
        raise ValueError(f"data_range must be a positive number, got {data_range!r}")
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    if _cpu.compiled(image1, image2):  # the same values, one pass over memory instead of ~120
        x, y = (_cpu.planes(image).astype(np.float64, copy=False) for image in (image1, image2))
        taps = gaussian_taps(_WINDOW_SIZE, _WINDOW_SIGMA)
        with numba_threads():
            means = [_cpu.kernels.ssim_mean(one, other, taps, c1, c2) for one, other in zip(x, y)]
        return torch.tensor(means, dtype=torch.float64).reshape(image1.shape[:-2])
    x, y = (image.double() if image.dtype == torch.uint8 else image for image in (image1, image2))

    def window(values: torch.Tensor) -> torch.Tensor:
        return gaussian_filter(values, _WINDOW_SIZE, _WINDOW_SIGMA)

    mean_x, mean_y = window(x), window(y)
    mean_xy, mean_xx, mean_yy = mean_x * mean_y, mean_x * mean_x, mean_y * mean_y
    variance_x, variance_y = window(x * x) - mean_xx, window(y * y) - mean_yy
    covariance = window(x * y) - mean_xy
    ssim_map = ((2 * mean_xy + c1) * (2 * covariance + c2)) / (
        (mean_xx + mean_yy + c1) * (variance_x + variance_y + c2)
    )
    return ssim_map.mean(dim=(-2, -1))
