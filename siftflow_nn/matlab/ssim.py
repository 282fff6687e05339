"""MATLAB's ``ssim(A, ref)`` with its defaults: the mean structural similarity of two images."""

import torch

from siftflow_nn._checks import check_planes
from siftflow_nn.matlab import _cpu
from siftflow_nn.matlab._arguments import positive_number
from siftflow_nn.matlab.filters import gaussian_filter, gaussian_taps
from siftflow_nn.matlab.rounding import class_range

__all__ = ["ssim"]

_WINDOW_SIZE, _WINDOW_SIGMA = 11, 1.5  # fspecial('gaussian', 2 * ceil(3 * 1.5) + 1, 1.5)
_K1, _K2 = 0.01, 0.03


def ssim(image1: torch.Tensor, image2: torch.Tensor, data_range: float | None = None) -> torch.Tensor:
    """MATLAB's ``ssim(image1, image2)``: Wang et al.'s SSIM with an 11 x 11 Gaussian window
    (sigma 1.5, replicated borders), ``K = (0.01, 0.03)``, exponents 1, averaged over the map.

    Args:
        image1, image2: ``(..., H, W)`` of one shape and dtype: uint8 or uint16 (computed in
            float64) or floating point (in its dtype).
        data_range: ``L``, a positive finite number; by default the class's range, as MATLAB: 255
            for uint8, 65535 for uint16, 1 for floats.

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
    class_default = class_range(image1.dtype)  # refuses dtypes that are no image class
    data_range = class_default if data_range is None else positive_number(data_range, "data_range")
    c1, c2 = (_K1 * data_range) ** 2, (_K2 * data_range) ** 2
    # integer classes in float64, as MATLAB's ssim: then the compiled path takes uint16 too
    x, y = (image if image.is_floating_point() else image.double() for image in (image1, image2))
    if _cpu.compiled(x, y):  # the same values, one pass over memory instead of ~120
        taps = gaussian_taps(_WINDOW_SIZE, _WINDOW_SIGMA)
        planes = zip(_cpu.planes(x), _cpu.planes(y))
        means = [_cpu.kernels.ssim_mean(one, other, taps, c1, c2) for one, other in planes]
        return torch.tensor(means, dtype=torch.float64).reshape(image1.shape[:-2])

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
