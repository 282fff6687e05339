"""Correlation of two feature maps at a displacement: the score local matching and flow networks use."""

import torch

from siftflow_nn.descriptor.kernels import at_least_float32

_CHANNEL_CHUNK = 16  # channels multiplied at a time: bounds the temporary to 16 x B x H x W


def shifted_dot(
    features1: torch.Tensor, features2: torch.Tensor, dx: int, dy: int
) -> tuple[torch.Tensor, tuple[slice, slice]]:
    """``<f1(x, y), f2(x + dx, y + dy)>`` where both exist: the ``(B, h, w)`` scores and the
    ``(rows, cols)`` of image 1 they cover. Summed in float32 at least; differentiable."""
    height, width = features1.shape[-2:]
    rows = slice(max(0, -dy), min(height, height - dy))
    cols = slice(max(0, -dx), min(width, width - dx))
    shifted_rows = slice(rows.start + dy, rows.stop + dy)
    shifted_cols = slice(cols.start + dx, cols.stop + dx)
    score = None
    for start in range(0, features1.shape[1], _CHANNEL_CHUNK):
        channels = slice(start, start + _CHANNEL_CHUNK)
        one = at_least_float32(features1[:, channels, rows, cols])
        two = at_least_float32(features2[:, channels, shifted_rows, shifted_cols])
        part = (one * two).sum(dim=1)
        score = part if score is None else score + part
    return score, (rows, cols)


def correlation_volume(features1: torch.Tensor, features2: torch.Tensor, radius: int) -> torch.Tensor:
    """Local correlation volume ``(B, (2r+1)^2, H, W)``: channel ``(dy + r) * (2r + 1) + (dx + r)``
    holds ``<f1(x, y), f2(x + dx, y + dy)>``, zero where that point is outside image 2.

    Example:
        >>> correlation_volume(torch.rand(2, 16, 10, 12), torch.rand(2, 16, 10, 12), radius=1).shape
        torch.Size([2, 9, 10, 12])
    """
    batch, _, height, width = features1.shape
    size = 2 * radius + 1
    dtype = torch.promote_types(features1.dtype, torch.float32)  # as shifted_dot sums
    volume = features1.new_zeros(batch, size * size, height, width, dtype=dtype)
    for dy in range(-radius, radius + 1):
        for dx in range(-radius, radius + 1):
            if abs(dx) < width and abs(dy) < height:
                score, (rows, cols) = shifted_dot(features1, features2, dx, dy)
                volume[:, (dy + radius) * size + dx + radius, rows, cols] = score
    return volume
