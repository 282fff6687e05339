"""MATLAB's ``imgradient(image)``: the Sobel gradient magnitude, as Aligned Distortion weights it."""

import torch

from siftflow_nn._checks import check_planes
from siftflow_nn.matlab.rounding import class_range

__all__ = ["imgradient"]


def imgradient(image: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``imgradient(image)`` with its default method, ``'sobel'``: ``hypot(Gx, Gy)``.

    ``imgradientxy`` correlates the image with ``[-1 0 1; -2 0 2; -1 0 1]`` and its transpose
    (``imfilter`` with replicated borders, the responses not divided by 8), the separable Sobel
    that kornia's ``spatial_gradient(normalized=False)`` computes too. MATLAB takes non-float input
    as single: uint8 and uint16 images give float32. Their responses are integers, computed here in
    int32 (exact, and ten times faster than a float64 convolution), and so is the sum of their
    squares: its square root in float64, rounded once to float32, is the correctly rounded single
    ``hypot``. Floating-point input is computed in its own dtype.

    Args:
        image: ``(..., H, W)``, uint8, uint16 or floating point.

    Returns:
        ``(..., H, W)``: float32 for uint8 and uint16, else the input's dtype.

    Example:
        >>> step = torch.tensor([[0, 0, 10, 10]], dtype=torch.uint8).expand(3, 4)
        >>> imgradient(step)[1].tolist()  # 4 * 10 across the edge, 2 * 10 beside it
        [0.0, 40.0, 40.0, 0.0]
    """
    check_planes(image)
    class_range(image.dtype)  # refuses dtypes that are no image class
    if image.is_floating_point():
        return torch.hypot(*_sobel(image))
    x, y = (response.double() for response in _sobel(image.int()))
    return (x * x + y * y).sqrt().float()


def _sobel(values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``(Gx, Gy)``: ``[1 2 1]`` across, ``[-1 0 1]`` along each axis, borders replicated."""

    def smooth(tensor: torch.Tensor, dim: int) -> torch.Tensor:
        padded = _replicate(tensor, dim)
        length = tensor.shape[dim]
        return padded.narrow(dim, 0, length) + 2 * tensor + padded.narrow(dim, 2, length)

    def difference(tensor: torch.Tensor, dim: int) -> torch.Tensor:
        padded = _replicate(tensor, dim)
        return padded.narrow(dim, 2, tensor.shape[dim]) - padded.narrow(dim, 0, tensor.shape[dim])

    return difference(smooth(values, -2), -1), difference(smooth(values, -1), -2)


def _replicate(tensor: torch.Tensor, dim: int) -> torch.Tensor:
    """``tensor`` with its first and last slices along ``dim`` repeated once outside."""
    return torch.cat([tensor.narrow(dim, 0, 1), tensor, tensor.narrow(dim, -1, 1)], dim)
