"""Synthetic test material made on the fly: textured images, smooth random flows, image pairs.

Used by the demo, the training example, the tests and the benchmarks, so that nothing has to be
downloaded. Every function is deterministic for a given ``seed``.
"""

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from siftflow_nn._checks import check_non_negative_number, describe_value
from siftflow_nn.flow.warp import warp

__all__ = [
    "appearance_change",
    "document_page",
    "document_pair",
    "smooth_flow",
    "synthetic_pair",
    "textured_image",
    "translated_pair",
    "write_document_benchmark",
]


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


def appearance_change(image: torch.Tensor, strength: float = 1.0, seed: int = 0) -> torch.Tensor:
    """``image`` as another exposure and light would show it: gamma, contrast, brightness, shading.

    What changes between two video frames or two photos of a page besides the geometry. With ``s =
    strength``, each drawn at random for the ``seed``: a gamma of ``exp(U(-0.4, 0.4) s)``, a contrast
    about mid-grey of ``exp(U(-0.3, 0.3) s)``, a brightness offset of ``U(-0.1, 0.1) s``, then a smooth
    multiplicative shading ``1 + 0.3 s f`` with ``f`` a random field in ``[-1, 1]`` that varies over
    the size of the image (a light from one side, a page's curl); the result is clamped to
    ``[0, 1]``, so the brightest and darkest parts may saturate, as in a photo. Every channel changes
    alike; ``strength=0`` returns the image as it is.

    Args:
        image: ``(C, H, W)`` float image in ``[0, 1]``.
        strength: scales every change; 1 (default) is a strong but ordinary change of light.
        seed: draws the changes.

    Returns:
        ``(C, H, W)``, in ``[0, 1]``.

    Example:
        >>> image = textured_image(32, 40)
        >>> changed = appearance_change(image, seed=1)
        >>> changed.shape, bool(changed.min() >= 0 and changed.max() <= 1), bool((changed - image).abs().mean() > 0.02)
        (torch.Size([3, 32, 40]), True, True)
        >>> torch.equal(appearance_change(image, strength=0.0), image)
        True
    """
    if not isinstance(image, torch.Tensor) or image.dim() != 3 or not image.is_floating_point():
        raise ValueError(f"image must be a float tensor (C, H, W) in [0, 1], got {describe_value(image)}")
    strength = check_non_negative_number(strength, "strength")
    if strength == 0:
        return image.clone()
    generator = torch.Generator().manual_seed(seed)
    draws = torch.rand(3, generator=generator) * 2 - 1
    gamma, contrast, brightness = (draws * torch.tensor([0.4, 0.3, 0.1])).tolist()
    _, height, width = image.shape
    # A few random control points across the whole image, so the shading is a gradual change of light.
    coarse = torch.randn(1, 1, 3, 3, generator=generator)
    field = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)[0]
    field = field / field.abs().max().clamp_min(1e-12)
    changed = image.clamp(0, 1) ** math.exp(gamma * strength)
    changed = (changed - 0.5) * math.exp(contrast * strength) + 0.5 + brightness * strength
    return (changed * (1 + 0.3 * strength * field.to(image.dtype))).clamp(0, 1)


def synthetic_pair(
    height: int,
    width: int,
    max_displacement: float = 4.0,
    channels: int = 3,
    seed: int = 0,
    noise: float = 0.0,
    appearance: float = 0.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(image1, image2, flow)``, each without batch dimension, with ``image1(x) = image2(x + flow(x))``.

    Image 2 is a textured image; image 1 is image 2 warped back by a smooth random flow. With
    ``appearance``, image 1 is then seen in another light: :func:`appearance_change` of that
    strength. With ``noise``, independent Gaussian noise of that standard deviation is added to both
    (clamped).

    Example:
        >>> image1, image2, flow = synthetic_pair(32, 40, max_displacement=2.0)
        >>> image1.shape, flow.shape, round(flow.abs().max().item(), 3)
        (torch.Size([3, 32, 40]), torch.Size([2, 32, 40]), 2.0)
    """
    image2 = textured_image(height, width, channels, seed=seed)
    flow = smooth_flow(height, width, max_displacement, seed=seed + 1)
    image1 = warp(image2[None], flow[None])[0]
    if appearance != 0:  # a negative strength is an error that appearance_change reports
        image1 = appearance_change(image1, appearance, seed=seed + 3)
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


def document_page(height: int, width: int, seed: int = 0) -> torch.Tensor:
    """A ``(1, height, width)`` page in [0, 1]: lines of text-like strokes on white, a rule, a
    table and a dark block, softened a little as a scanner would.

    Example:
        >>> page = document_page(120, 90)
        >>> page.shape, bool(page.max() == 1), bool(page.min() < 0.5)
        (torch.Size([1, 120, 90]), True, True)
    """
    generator = torch.Generator().manual_seed(seed)
    ink = torch.zeros(height, width)
    margin = max(2, width // 12)
    line_height = max(6, height // 28)
    table_at = height * 3 // 5
    for y in range(margin, table_at - line_height, line_height):  # text lines, ragged at the right
        end = width - margin - int(torch.randint(0, width // 4 + 1, (), generator=generator))
        _write_line(ink[y : y + line_height], margin, end, generator)
    ink[table_at - 3, margin : width - margin] = 1  # a rule
    rows, columns = 4, 3
    table_bottom = table_at + rows * line_height
    for r in range(rows + 1):
        ink[min(table_at + r * line_height, height - 1), margin : width - margin] = 1
    for c in range(columns + 1):
        x = margin + c * (width - 2 * margin - 1) // columns
        ink[table_at : min(table_bottom, height - 1) + 1, x] = 1
    block_top = min(table_bottom + line_height, height - margin)
    ink[block_top : height - margin, margin : margin + (width - 2 * margin) // 3] = 0.8
    page = 1 - 0.85 * ink[None, None]
    soften = torch.tensor([0.25, 0.5, 0.25])
    page = F.conv2d(F.pad(page, (1, 1, 1, 1), mode="replicate"), (soften[:, None] * soften[None, :]).view(1, 1, 3, 3))
    return page[0].clamp(0, 1)


def _write_line(ink: torch.Tensor, start: int, end: int, generator: torch.Generator) -> None:
    """Words of glyphs (a stem and a bar or two, 1 px strokes) into a text line's rows of ``ink``."""
    glyph = max(2, ink.shape[0] // 2)  # the glyphs' height; they are about glyph / 2 + 1 wide
    x = start
    while x + glyph < end:
        for _ in range(int(torch.randint(2, 8, (), generator=generator))):  # a word
            if x + glyph >= end:
                break
            shape = int(torch.randint(0, 6, (), generator=generator))
            ink[:glyph, x] = 1  # every glyph has a stem
            for row, shapes in ((0, (1, 3)), (glyph - 1, (2, 3)), (glyph // 2, (4, 5))):
                if shape in shapes:
                    ink[row, x : x + glyph // 2 + 1] = 1
            if shape == 5:
                ink[:glyph, x + glyph // 2] = 1
            x += glyph // 2 + 2
        x += glyph  # the space between words


def document_pair(
    height: int, width: int, max_displacement: float = 3.0, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(photo, scan, flow)``: a ``document_page`` (the scan) and the page resampled through a
    smooth field of up to ``max_displacement`` pixels (an imperfectly unwarped photo of it),
    ``photo(x) = scan(x + flow(x))``; ``(1, H, W)`` each, ``(2, H, W)`` flow.

    Example:
        >>> photo, scan, flow = document_pair(96, 72, max_displacement=2.0)
        >>> photo.shape, round(flow.abs().max().item(), 3)
        (torch.Size([1, 96, 72]), 2.0)
    """
    scan = document_page(height, width, seed)
    flow = smooth_flow(height, width, max_displacement, seed=seed + 1, scale=max(8, min(height, width) // 3))
    return warp(scan[None], flow[None])[0].clamp(0, 1), scan, flow


def write_document_benchmark(
    folder: str | os.PathLike[str],
    scans: int = 2,
    height: int = 240,
    width: int = 180,
    seed: int = 0,
    varied_sizes: bool = False,
) -> tuple[Path, Path]:
    """A small DocUNet-style benchmark of ``document_pair`` pages on disk, named as the original:
    ``folder/scan/{i}.png`` and ``folder/rec/{i}_1 copy_rec.png``, ``{i}_2 copy_rec.png`` (the
    second photo more displaced than the first), ``i = 1 .. scans``; and the distorted photos'
    sizes as ``folder/crop/{i}_{m} copy.png``, white pages a quarter larger than the scan (all the
    ``uvdoc`` OCR protocol reads of them). ``varied_sizes``: page ``i`` is ``(height + 4 k) x
    (width + 3 k)`` with ``k = i - (scans + 1) // 2``, a different size per scan as in the real
    benchmark, centred on ``height x width``. Returns ``(rec, scan)``.
    """
    from siftflow_nn.io import write_image

    rec_dir, scan_dir, crop_dir = (Path(folder) / name for name in ("rec", "scan", "crop"))
    for made in (rec_dir, scan_dir, crop_dir):
        made.mkdir(parents=True, exist_ok=True)
    for index in range(1, scans + 1):
        page_seed = seed + 10 * index
        step = index - (scans + 1) // 2 if varied_sizes else 0
        page_height, page_width = height + 4 * step, width + 3 * step
        photo_size = torch.ones(1, page_height + page_height // 4, page_width + page_width // 4)
        for photo_index, displacement in ((1, 2.0), (2, 5.0)):
            photo, scan, _ = document_pair(page_height, page_width, displacement, seed=page_seed)
            write_image(rec_dir / f"{index}_{photo_index} copy_rec.png", photo)
            write_image(crop_dir / f"{index}_{photo_index} copy.png", photo_size)
        write_image(scan_dir / f"{index}.png", scan)
    return rec_dir, scan_dir
