"""Backward warping of images by a dense flow, and where such a warp stays inside the image."""

import torch
import torch.nn.functional as F

from siftflow_nn._checks import check_flow, check_image, describe_value

__all__ = ["warp", "warp_valid_mask"]


def _sampling_grid(flow: torch.Tensor) -> torch.Tensor:
    """``grid_sample`` coordinates (align_corners=True) of the points ``(x + u, y + v)``."""
    _, _, height, width = flow.shape
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1)
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width)
    # A one-pixel axis has no extent to normalise by; its only valid coordinate is 0 either way.
    x = (xs + flow[:, 0]) * (2.0 / max(width - 1, 1)) - 1.0
    y = (ys + flow[:, 1]) * (2.0 / max(height - 1, 1)) - 1.0
    return torch.stack([x, y], dim=-1)


def warp(image: torch.Tensor, flow: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    r"""Bilinear backward warp: ``out(x, y) = image(x + u(x, y), y + v(x, y))``.

    With the flow convention of this package (``image2(x + u, y + v) ~ image1(x, y)``),
    ``warp(image2, flow)`` brings image 2 onto image 1. Differentiable in both arguments.

    Args:
        image: ``(B, C, H, W)`` float tensor.
        flow: ``(B, 2, H, W)`` displacement in pixels, x then y.
        padding_mode: what points outside the image read: ``"border"`` (default), ``"zeros"`` or
            ``"reflection"``, as in :func:`torch.nn.functional.grid_sample`.

    Returns:
        ``(B, C, H, W)`` warped image; NaN where the flow is NaN or infinite.

    Example:
        >>> image = torch.arange(12.0).view(1, 1, 3, 4)
        >>> flow = torch.zeros(1, 2, 3, 4)
        >>> flow[:, 0] = 1.0  # read one pixel to the right
        >>> warp(image, flow)[0, 0]
        tensor([[ 1.,  2.,  3.,  3.],
                [ 5.,  6.,  7.,  7.],
                [ 9., 10., 11., 11.]])
    """
    if not torch.jit.is_scripting():
        check_image(image)
        check_flow(flow, image)
    flow = flow.to(image.dtype)
    # grid_sample must never see a NaN or infinite coordinate: its backward can then write out of
    # bounds (a crash). Such points read a finite stand-in, and the output there is set to NaN
    # (flow * 0 is NaN exactly where the flow is not finite), so that the loss says so.
    grid = torch.nan_to_num(_sampling_grid(flow), nan=0.0, posinf=2.0, neginf=-2.0)
    warped = F.grid_sample(image, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)
    return warped + (flow * 0).sum(dim=1, keepdim=True)


def warp_valid_mask(flow: torch.Tensor) -> torch.Tensor:
    """``(B, 1, H, W)`` bool: where ``(x + u, y + v)`` lies inside the image (borders included)."""
    if not torch.jit.is_scripting():
        if not isinstance(flow, torch.Tensor) or flow.dim() != 4 or flow.shape[1] != 2:
            raise ValueError(f"flow must have shape B x 2 x H x W, got {describe_value(flow)}")
    _, _, height, width = flow.shape
    xs = torch.arange(width, device=flow.device, dtype=flow.dtype).view(1, 1, width) + flow[:, 0]
    ys = torch.arange(height, device=flow.device, dtype=flow.dtype).view(1, height, 1) + flow[:, 1]
    inside = (xs >= 0) & (xs <= width - 1) & (ys >= 0) & (ys <= height - 1)
    return inside.unsqueeze(1)
