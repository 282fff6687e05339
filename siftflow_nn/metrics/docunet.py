"""The DocUNet benchmark's metrics: MS-SSIM, Local Distortion (LD) and Line Distortion (Li-D).

Ma et al., "DocUNet: Document Image Unwarping via a Stacked U-Net", CVPR 2018, and the papers
since (DewarpNet, DocTr, DocScanner, ...) score an unwarped photo against the flat scan of the
same page with the public MATLAB scripts ``eval.m`` and ``evalUnwarp.m``. This module is those
scripts, step by step on ``siftflow_nn.matlab``'s MATLAB functions:

1. ``eval.m``: ``rgb2gray`` both; resize the scan by ``b = sqrt(598400 / (h * w))`` and the photo
   to the scan's new size (``imresize``, bicubic, antialiased): ``benchmark_pair``;
2. MS-SSIM: ``ssim`` at 5 scales, ``impyramid(..., 'reduce')`` between them, weighted by
   ``[0.0448 0.2856 0.3001 0.2363 0.1333]`` and summed (the script sums; it does not multiply
   powers as Wang et al.'s MS-SSIM does);
3. LD and Li-D: both images through ``imfilter(fspecial('gaussian', 7, 1), 'replicate')`` and
   ``imresize(0.5)``, the SIFT flow release's descriptor (``mexDenseSIFT``, cell size 3, step 1)
   and its 2010 ``SIFTflowc2f`` (alpha 2 * 255, d 40 * 255, gamma 0.005 * 255, 4 levels, windows
   2 and 10, 30 and 60 iterations), the flow from the scan to the photo; LD is the mean length of
   the flow, Li-D the mean over rows of the standard deviation of ``vy`` along each row and over
   columns of that of ``vx`` along each column, averaged.

Every stage reproduces MATLAB's bit for bit on ``../shared/reference/docunet`` (uint8 images
rounded where MATLAB rounds), and the flow is the original matcher's (equal energies at every
level). Where a detail could not follow MATLAB, it is said where it happens: the descriptor's
float64 arithmetic equals the C++ one's uint8 output except at exact rounding ties (a few entries
per million, one unit); on a GPU the matcher is the torch solver, whose schedule differs slightly
from the original's sweeps (energies within about 0.5%).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import torch

from siftflow_nn import matlab
from siftflow_nn.descriptor import sift_flow_descriptor
from siftflow_nn.flow.sift_flow import SIFTFlow
from siftflow_nn.io import read_image

__all__ = [
    "DocUNetScores",
    "benchmark_pair",
    "docunet_flow",
    "docunet_metrics",
    "line_distortion",
    "local_distortion",
    "ms_ssim_docunet",
]

TARGET_AREA = 598400  # eval.m: every scan is resized to about this many pixels
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)
_BLUR_SIZE, _BLUR_SIGMA = 7, 1.0  # evalUnwarp: fspecial('gaussian', 7, 1)
_CELL_SIZE = 3  # evalUnwarp: mexDenseSIFT(im, 3, 1)

Images = torch.Tensor | str | os.PathLike | Sequence[str | os.PathLike]


class DocUNetScores(NamedTuple):
    """The benchmark's three scores, one value per pair each (``(B,)`` float64)."""

    ms_ssim: torch.Tensor
    local_distortion: torch.Tensor
    line_distortion: torch.Tensor


def benchmark_pair(unwarped: Images, scan: Images) -> tuple[torch.Tensor, torch.Tensor]:
    """``eval.m``'s inputs to ``evalUnwarp``: both in gray, the scan at the benchmark's area.

    Args:
        unwarped, scan: a path each, or ``(B, C, H, W)`` / ``(C, H, W)`` tensors with 1 or 3
            channels, uint8 (as ``imread`` gives) or floating point in ``[0, 1]`` (taken as
            ``im2uint8`` would); the two may differ in size.

    Returns:
        ``(unwarped, scan)``: ``(B, 1, h, w)`` uint8, ``h x w = ceil(b H) x ceil(b W)`` with
        ``b = sqrt(598400 / (H W))`` of the scan.

    Example:
        >>> unwarped, scan = benchmark_pair(torch.zeros(3, 300, 200), torch.zeros(1, 600, 400))
        >>> tuple(unwarped.shape), tuple(scan.shape), unwarped.dtype
        ((1, 1, 948, 632), (1, 1, 948, 632), torch.uint8)
    """
    unwarped, scan = _gray_batch(unwarped, "unwarped"), _gray_batch(scan, "scan")
    if unwarped.shape[0] != scan.shape[0]:
        raise ValueError(f"unwarped and scan must hold as many images, got {unwarped.shape[0]} and {scan.shape[0]}")
    height, width = scan.shape[-2:]
    scan = matlab.imresize(scan, math.sqrt(TARGET_AREA / (height * width)))
    return matlab.imresize(unwarped.to(scan.device), out_size=tuple(scan.shape[-2:])), scan


def ms_ssim_docunet(unwarped: Images, scan: Images) -> torch.Tensor:
    """The benchmark's MS-SSIM of each pair (``benchmark_pair``'s arguments): ``(B,)`` float64.

    Example:
        >>> page = torch.rand(1, 1, 120, 90)
        >>> score = ms_ssim_docunet(page, page)  # not 1: the two are resized at slightly other scales
        >>> score.shape, 0.9 < score.item() < 1
        (torch.Size([1]), True)
    """
    if isinstance(unwarped, (list, tuple)):
        return _per_pair(ms_ssim_docunet, unwarped, scan)
    return _ms_ssim(*benchmark_pair(unwarped, scan))


def docunet_flow(unwarped: Images, scan: Images) -> torch.Tensor:
    """``evalUnwarp``'s SIFT flow from the scan to the unwarped photo, at half the benchmark's size.

    Returns:
        ``(B, 2, ceil(h / 2), ceil(w / 2))`` float32 ``(vx, vy)`` (integers), ``h x w`` as in
        ``benchmark_pair``; for lists of paths, a list of ``(1, 2, ...)`` flows (sizes differ).
    """
    if isinstance(unwarped, (list, tuple)):
        return [docunet_flow(one, other) for one, other in _pairs(unwarped, scan)]
    return _flow(*benchmark_pair(unwarped, scan))


def local_distortion(unwarped: Images, scan: Images) -> torch.Tensor:
    """The benchmark's LD of each pair: the mean length of ``docunet_flow``. ``(B,)`` float64.

    ``docunet_metrics`` gives LD, Li-D and MS-SSIM from one flow: use it for more than one.
    """
    if isinstance(unwarped, (list, tuple)):
        return _per_pair(local_distortion, unwarped, scan)
    return _mean_length(docunet_flow(unwarped, scan))


def line_distortion(unwarped: Images, scan: Images) -> torch.Tensor:
    """The benchmark's Li-D of each pair: how unevenly ``docunet_flow`` moves each row
    (vertically) and each column (horizontally). ``(B,)`` float64."""
    if isinstance(unwarped, (list, tuple)):
        return _per_pair(line_distortion, unwarped, scan)
    return _line_spread(docunet_flow(unwarped, scan))


def docunet_metrics(unwarped: Images, scan: Images) -> DocUNetScores:
    """MS-SSIM, LD and Li-D of each pair, as ``eval.m`` computes them.

    Args:
        unwarped: the unwarped photos: a path, a list of paths, or a ``(B, C, H, W)`` /
            ``(C, H, W)`` tensor (1 or 3 channels; uint8, or floating point in ``[0, 1]``).
        scan: the flat scans, in the same form (tensors may differ in size from ``unwarped``).
            Tensors on a GPU are scored there.

    Returns:
        ``DocUNetScores(ms_ssim, local_distortion, line_distortion)``, each ``(B,)`` float64.

    Example:
        >>> page = torch.zeros(1, 1, 120, 90)
        >>> page[..., 30:34, 10:80] = 1  # a line of "text"
        >>> scores = docunet_metrics(page, page)
        >>> [round(float(value[0]), 4) for value in scores]
        [1.0, 0.0, 0.0]
    """
    if isinstance(unwarped, (list, tuple)):
        scores = [docunet_metrics(one, other) for one, other in _pairs(unwarped, scan)]
        return DocUNetScores(*(torch.cat(values) for values in zip(*scores)))
    unwarped, scan = benchmark_pair(unwarped, scan)
    flow = _flow(unwarped, scan)
    return DocUNetScores(_ms_ssim(unwarped, scan), _mean_length(flow), _line_spread(flow))


# --- the stages ----------------------------------------------------------------------------------


def _ms_ssim(unwarped: torch.Tensor, scan: torch.Tensor) -> torch.Tensor:
    """``(B,)``: ``sum_k w_k ssim_k`` over 5 scales of uint8 ``(B, 1, h, w)`` images."""
    total = torch.zeros(unwarped.shape[0], dtype=torch.float64, device=unwarped.device)
    for scale, weight in enumerate(MS_SSIM_WEIGHTS):
        if scale:
            unwarped, scan = matlab.impyramid_reduce(unwarped), matlab.impyramid_reduce(scan)
        total += weight * matlab.ssim(unwarped, scan)[:, 0]
    return total


def _halves(image: torch.Tensor) -> torch.Tensor:
    """evalUnwarp's ``imresize(imfilter(im, fspecial('gaussian', 7, 1), 'replicate'), 0.5)``."""
    return matlab.imresize(matlab.gaussian_filter(image, _BLUR_SIZE, _BLUR_SIGMA), 0.5)


def _flow(unwarped: torch.Tensor, scan: torch.Tensor, schedule: str = "2010") -> torch.Tensor:
    """evalUnwarp's flow (scan to photo) from ``benchmark_pair``'s uint8 images (``schedule``:
    the release's 2010 driver, which the scripts call; "2009" to compare with older numbers)."""
    matcher = SIFTFlow(schedule=schedule, derivative="release")
    halves = [_halves(image) for image in (scan, unwarped)]
    height, width = halves[0].shape[-2:]
    if min(height, width) < matcher.minimum_size():
        raise ValueError(
            f"the scan's benchmark size halved is {height} x {width}, too narrow for SIFT flow's 4 levels "
            f"(at least {matcher.minimum_size()} pixels a side): is it a page?"
        )
    return matcher.match(*(_release_descriptor(half) for half in halves), energies="none")[0]


def _release_descriptor(half: torch.Tensor) -> torch.Tensor:
    """``mexDenseSIFT(im2double(half), 3, 1)`` as uint8, channels last (the compiled solver's
    layout). In float64, as the original's C++: its uint8 entries then agree but for rounding ties."""
    image = half.double() / 255
    out = torch.empty((image.shape[0], 128, *image.shape[-2:]), dtype=torch.uint8, device=image.device,
                      memory_format=torch.channels_last)  # fmt: skip
    return sift_flow_descriptor(image, _CELL_SIZE, derivative="release", out=out)  # to_uint8 of it, strip by strip


def _mean_length(flow: torch.Tensor) -> torch.Tensor:
    """LD: ``mean(sqrt(vx^2 + vy^2))`` per flow."""
    flow = flow.double()
    return flow.square().sum(1).sqrt().mean(dim=(-2, -1))


def _line_spread(flow: torch.Tensor) -> torch.Tensor:
    """Li-D: ``(mean over rows of std(vy along the row) + mean over columns of std(vx along the
    column)) / 2``, population standard deviations (MATLAB's ``std(x, 1)``)."""
    flow = flow.double()
    rows = flow[:, 1].std(dim=-1, correction=0).mean(dim=-1)
    columns = flow[:, 0].std(dim=-2, correction=0).mean(dim=-1)
    return (rows + columns) / 2


# --- inputs --------------------------------------------------------------------------------------


def _gray_batch(images, name: str) -> torch.Tensor:
    """``(B, 1, H, W)`` uint8 from a path or a tensor (see ``benchmark_pair``)."""
    if isinstance(images, (str, os.PathLike)):
        images = read_image(images, uint8=True, orient=False)  # as MATLAB's imread
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
        kind = f"a tensor of shape {tuple(images.shape)}" if isinstance(images, torch.Tensor) else type(images).__name__
        raise ValueError(f"{name} must be a path or a (B, C, H, W) or (C, H, W) image tensor, got {kind}")
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 (gray) or 3 (RGB) channels, got {images.shape[1]}")
    if 0 in images.shape:
        raise ValueError(f"{name} is empty: shape {tuple(images.shape)}")
    if images.is_floating_point():
        if not bool(((images >= 0) & (images <= 1)).all()):
            raise ValueError(f"{name}: floating-point images must lie in [0, 1] (NaN is not), as im2uint8 expects")
        images = matlab.im2uint8(images)
    elif images.dtype != torch.uint8:
        raise TypeError(f"{name} must be uint8 or floating point, got dtype {images.dtype}")
    return matlab.rgb2gray(images) if images.shape[1] == 3 else images


def _pairs(unwarped: Sequence, scan) -> list[tuple]:
    if not isinstance(scan, (list, tuple)) or len(scan) != len(unwarped):
        count = len(scan) if isinstance(scan, (list, tuple)) else type(scan).__name__
        raise ValueError(f"scan must be a list as long as unwarped ({len(unwarped)}), got {count}")
    return list(zip(unwarped, scan))


def _per_pair(function, unwarped: Sequence, scan) -> torch.Tensor:
    """``function`` on each pair of two lists (of paths or tensors), its results concatenated."""
    return torch.cat([function(one, other) for one, other in _pairs(unwarped, scan)])
