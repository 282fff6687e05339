"""Synthetic test material made on the fly: textured images, smooth random flows, image pairs.

Used by the demo, the training example, the tests and the benchmarks, so that nothing has to be
downloaded. Every function is deterministic for a given ``seed``.
"""

import math

import torch
import torch.nn.functional as F

from siftflow_nn.flow.warp import warp

__all__ = ["smooth_flow", "synthetic_pair", "textured_image", "translated_pair"]


def _upsampled_noise(channels: int, height: int, width: int, cell: int, generator: torch.Generator) -> torch.Tensor:
    coarse = torch.rand(1, channels, height // cell + 2, width // cell + 2, generator=generator) * 2 - 1
    return F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]


def textured_image(height: int, width: int, channels: int = 3, seed: int = 0) -> torch.Tensor:
    """A ``(channels, height, width)`` image in [0, 1] with texture at every scale from 2 to 64 pixels.

    Example:
        >>> textured_image(32, 48, channels=1).shape
        torch.Size([1, 32, 48])
    """
    generator = torch.Generator().manual_seed(seed)
    image = torch.zeros(channels, height, width)
    for cell in (2, 4, 8, 16, 32, 64):
        image += math.sqrt(cell) * _upsampled_noise(channels, height, width, cell, generator)
    # A few hard edges, as real scenes have: random half-planes add a step each.
    ys = torch.arange(height).view(height, 1).float()
    xs = torch.arange(width).view(1, width).float()
    for _ in range(6):
        angle, offset, level = torch.rand(3, generator=generator).tolist()
        normal = (math.cos(2 * math.pi * angle), math.sin(2 * math.pi * angle))
        side = (xs * normal[0] + ys * normal[1]) > offset * (width + height) / 2
        image += 4 * (level - 0.5) * side.float()
    low = image.amin(dim=(1, 2), keepdim=True)
    high = image.amax(dim=(1, 2), keepdim=True)
    return (image - low) / (high - low).clamp_min(1e-12)


def smooth_flow(height: int, width: int, max_displacement: float = 4.0, seed: int = 0, scale: int = 48) -> torch.Tensor:
    """A ``(2, height, width)`` smooth random flow whose largest component is ``max_displacement``.

    ``scale`` is the spacing in pixels of its random control points.
    """
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.randn(1, 2, max(2, height // scale + 2), max(2, width // scale + 2), generator=generator)
    flow = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]
    return flow * (max_displacement / flow.abs().max().clamp_min(1e-12))


def synthetic_pair(
    height: int, width: int, max_displacement: float = 4.0, channels: int = 3, seed: int = 0, noise: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image1, image2, flow)``, each without batch dimension, with ``image1(x) = image2(x + flow(x))``.

    Image 2 is a textured image; image 1 is image 2 warped back by a smooth random flow. With
    ``noise``, independent Gaussian noise of that standard deviation is added to both (clamped).

    Example:
        >>> image1, image2, flow = synthetic_pair(32, 40, max_displacement=2.0)
        >>> image1.shape, flow.shape, round(flow.abs().max().item(), 3)
        (torch.Size([3, 32, 40]), torch.Size([2, 32, 40]), 2.0)
    """
    image2 = textured_image(height, width, channels, seed=seed)
    flow = smooth_flow(height, width, max_displacement, seed=seed + 1)
    image1 = warp(image2[None], flow[None])[0]
    if noise > 0:
        generator = torch.Generator().manual_seed(seed + 2)
        image1 = (image1 + noise * torch.randn(image1.shape, generator=generator)).clamp(0, 1)
        image2 = (image2 + noise * torch.randn(image2.shape, generator=generator)).clamp(0, 1)
    return image1, image2, flow


def translated_pair(
    height: int, width: int, dx: int, dy: int, channels: int = 3, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image1, image2, flow)`` for a pure integer translation: ``image1(x, y) = image2(x + dx, y + dy)``.

    Both images are crops of one larger texture, so no border is invented.
    """
    margin_x, margin_y = abs(dx), abs(dy)
    texture = textured_image(height + 2 * margin_y, width + 2 * margin_x, channels, seed=seed)
    image1 = texture[:, margin_y : margin_y + height, margin_x : margin_x + width]
    image2 = texture[:, margin_y - dy : margin_y - dy + height, margin_x - dx : margin_x - dx + width]
    flow = torch.empty(2, height, width)
    flow[0], flow[1] = float(dx), float(dy)
    return image1.contiguous(), image2.contiguous(), flow
