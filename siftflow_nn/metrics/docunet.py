"""The DocUNet benchmark's metrics: MS-SSIM, Local Distortion (LD), Line Distortion (Li-D) and
Aligned Distortion (AD).

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
   columns of that of ``vx`` along each column, averaged;
4. AD (PaperEdge's and UVDoc's ``evalAlignedUnwarp.m``): LD after the best scaling and shift of
   that same flow, weighted by the scan's edges (``aligned_distortion.py``).

Every stage reproduces MATLAB's bit for bit on ``../shared/reference/docunet`` (uint8 images
rounded where MATLAB rounds), and the flow is the original matcher's (equal energies at every
level). Where a detail could not follow MATLAB, it is said where it happens: the descriptor's
float64 arithmetic equals the C++ one's uint8 output except at exact rounding ties (a few entries
per million, one unit); on a GPU the matcher is the torch solver, whose schedule differs slightly
from the original's sweeps (energies within about 0.5%); AD's mean is taken in float64, MATLAB's
in single (about 2e-5 relative).

16-bit images are scored as MATLAB scores them: ``imread`` gives uint16, and ``eval.m`` converts,
resizes, filters and compares them in that class (rounded to 0..65535 after each step, SSIM's
range 65535), the descriptor reading ``im2double``'s ``/ 65535``. Give them as ``torch.uint16``
tensors or NumPy uint16 arrays; paths are read by ``siftflow_nn.io.read_image`` (8 bits).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np
import torch

from siftflow_nn import matlab
from siftflow_nn._checks import describe_value
from siftflow_nn.descriptor import sift_flow_descriptor
from siftflow_nn.flow.sift_flow import SIFTFlow
from siftflow_nn.io import read_image
from siftflow_nn.metrics.aligned_distortion import aligned_distortion_of_flow

__all__ = [
    "DocUNetEvaluation",
    "DocUNetScores",
    "aligned_distortion",
    "benchmark_pair",
    "docunet_evaluation",
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

Image = torch.Tensor | np.ndarray | str | os.PathLike
Images = Image | Sequence[Image]


class DocUNetScores(NamedTuple):
    """The benchmark's four scores, one value per pair each (``(B,)`` float64)."""

    ms_ssim: torch.Tensor
    local_distortion: torch.Tensor
    line_distortion: torch.Tensor
    aligned_distortion: torch.Tensor


class DocUNetEvaluation(NamedTuple):
    """``docunet_evaluation``'s result: the scores and what they were computed from.

    - ``scores``: ``DocUNetScores``;
    - ``flow``: ``(B, 2, h, w)`` float32 ``(vx, vy)``, the flow LD, Li-D and AD used (``docunet_flow``);
    - ``scan``: ``(B, 1, H, W)`` uint8 (uint16 for 16-bit input), the scan as ``eval.m`` resized it.

    For lists of pairs, ``flow`` and ``scan`` are lists of ``(1, ...)`` tensors (their sizes differ).
    """

    scores: DocUNetScores
    flow: torch.Tensor | list[torch.Tensor]
    scan: torch.Tensor | list[torch.Tensor]


def benchmark_pair(unwarped: Image, scan: Image) -> tuple[torch.Tensor, torch.Tensor]:
    """``eval.m``'s inputs to ``evalUnwarp``: both in gray, the scan at the benchmark's area.

    Args:
        unwarped, scan: a path each (read with ``siftflow_nn.io.read_image``, 8 bits, as
            ``imread`` gives an 8-bit file), a ``(B, C, H, W)`` / ``(C, H, W)`` tensor or an
            ``(H, W)`` / ``(H, W, C)`` NumPy array (``imread``'s layout), with 1 or 3 channels:
            uint8 or uint16 (``torch.uint16``; computed as MATLAB computes 16-bit images), or
            floating point in ``[0, 1]`` (taken as ``im2uint8`` would). The two may differ in
            size, not in class: MATLAB's ``ssim`` refuses a uint8 photo against a uint16 scan.

    Returns:
        ``(unwarped, scan)``: ``(B, 1, h, w)`` uint8 (uint16 for 16-bit input),
        ``h x w = ceil(b H) x ceil(b W)`` with ``b = sqrt(598400 / (H W))`` of the scan.

    Example:
        >>> unwarped, scan = benchmark_pair(torch.zeros(3, 300, 200), torch.zeros(1, 600, 400))
        >>> tuple(unwarped.shape), tuple(scan.shape), unwarped.dtype
        ((1, 1, 948, 632), (1, 1, 948, 632), torch.uint8)
    """
    unwarped, scan = _gray_batch(unwarped, "unwarped"), _gray_batch(scan, "scan")
    if unwarped.shape[0] != scan.shape[0]:
        raise ValueError(f"unwarped and scan must hold as many images, got {unwarped.shape[0]} and {scan.shape[0]}")
    if unwarped.dtype != scan.dtype:
        raise ValueError(
            f"unwarped and scan must be of one class, got {unwarped.dtype} and {scan.dtype} (MATLAB's ssim refuses "
            "them too): convert one, e.g. a uint16 image to 8 bits with siftflow_nn.matlab.im2uint8"
        )
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


def docunet_flow(unwarped: Images, scan: Images) -> torch.Tensor | list[torch.Tensor]:
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

    ``docunet_metrics`` gives all four scores from one flow: use it for more than one.
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


def aligned_distortion(unwarped: Images, scan: Images) -> torch.Tensor:
    """The Aligned Distortion (AD) of each pair, as PaperEdge and UVDoc compute it: LD of
    ``docunet_flow`` after the scaling and shift that best explain it, weighted by the scan's
    edges (``aligned_distortion_of_flow``). ``(B,)`` float64.

    Example:
        >>> page = torch.zeros(1, 1, 120, 90)
        >>> page[..., 30:34, 10:80] = 1  # a line of "text"
        >>> value = float(aligned_distortion(page, page))  # not 0: MATLAB's 4 LSQR steps leave a little
        >>> 0 <= value < 1e-3
        True
    """
    if isinstance(unwarped, (list, tuple)):
        return _per_pair(aligned_distortion, unwarped, scan)
    unwarped, scan = benchmark_pair(unwarped, scan)
    return aligned_distortion_of_flow(_flow(unwarped, scan), scan)


def docunet_evaluation(unwarped: Images, scan: Images) -> DocUNetEvaluation:
    """MS-SSIM, LD, Li-D and AD of each pair from one flow, with that flow and the resized scan.

    What a report needs to draw a pair (the scan with its flow over it) without matching again;
    ``docunet_metrics`` is its ``scores``. Arguments as ``docunet_metrics``'.

    Returns:
        ``DocUNetEvaluation(scores, flow, scan)``: ``DocUNetScores`` of ``(B,)`` float64, the
        ``(B, 2, h, w)`` float32 flow and the ``(B, 1, H, W)`` uint8 (or uint16) scan; for lists,
        the scores concatenated and lists of flows and scans.

    Example:
        >>> page = torch.zeros(1, 1, 120, 90)
        >>> page[..., 30:34, 10:80] = 1
        >>> result = docunet_evaluation(page, page)
        >>> tuple(result.scan.shape), tuple(result.flow.shape), float(result.scores.local_distortion)
        ((1, 1, 894, 670), (1, 2, 447, 335), 0.0)
    """
    if isinstance(unwarped, (list, tuple)):
        each = [docunet_evaluation(one, other) for one, other in _pairs(unwarped, scan)]
        scores = DocUNetScores(*(torch.cat(values) for values in zip(*(result.scores for result in each))))
        return DocUNetEvaluation(scores, [result.flow for result in each], [result.scan for result in each])
    unwarped, scan = benchmark_pair(unwarped, scan)
    flow = _flow(unwarped, scan)
    scores = DocUNetScores(
        _ms_ssim(unwarped, scan), _mean_length(flow), _line_spread(flow), aligned_distortion_of_flow(flow, scan)
    )
    return DocUNetEvaluation(scores, flow, scan)


def docunet_metrics(unwarped: Images, scan: Images) -> DocUNetScores:
    """MS-SSIM, LD and Li-D of each pair, as ``eval.m`` computes them, and AD, as PaperEdge's and
    UVDoc's ``evalAlignedUnwarp.m`` does, all from one flow.

    Args:
        unwarped: the unwarped photos: a path, a list of paths, a ``(B, C, H, W)`` / ``(C, H, W)``
            tensor or an ``(H, W)`` / ``(H, W, C)`` NumPy array (1 or 3 channels; uint8, uint16, or
            floating point in ``[0, 1]``), or a list of those.
        scan: the flat scans, in the same form and class (they may differ in size from ``unwarped``).
            Tensors on a GPU are scored there.

    Returns:
        ``DocUNetScores(ms_ssim, local_distortion, line_distortion, aligned_distortion)``, each
        ``(B,)`` float64.

    Example:
        >>> page = torch.zeros(1, 1, 120, 90)
        >>> page[..., 30:34, 10:80] = 1  # a line of "text"
        >>> scores = docunet_metrics(page, page)
        >>> [round(float(value[0]), 4) for value in scores]
        [1.0, 0.0, 0.0, 0.0]
    """
    return docunet_evaluation(unwarped, scan).scores


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
    image = matlab.im2double(half)
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
    """``(B, 1, H, W)`` uint8 or uint16 from a path, a tensor or an array (see ``benchmark_pair``)."""
    if isinstance(images, (str, os.PathLike)):
        images = read_image(images, uint8=True, orient=False)  # as MATLAB's imread
    elif isinstance(images, np.ndarray):
        if images.ndim not in (2, 3):
            raise ValueError(f"{name}: a NumPy image must be (H, W) or (H, W, C), as imread gives, got {images.shape}")
        images = torch.from_numpy(np.ascontiguousarray(images.reshape(*images.shape[:2], -1).transpose(2, 0, 1)))
    if not isinstance(images, torch.Tensor) or images.dim() not in (3, 4):
        raise ValueError(
            f"{name} must be a path or a (B, C, H, W) or (C, H, W) image tensor (or an (H, W[, C]) NumPy "
            f"array), got {describe_value(images)}"
        )
    if images.device.type == "meta":
        raise ValueError(f"{name} is on the meta device (a shape without data): move it to cpu or cuda first")
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
    elif images.dtype not in (torch.uint8, torch.uint16):
        raise TypeError(f"{name} must be uint8, uint16 or floating point, got dtype {images.dtype}")
    return matlab.rgb2gray(images) if images.shape[1] == 3 else images


def _pairs(unwarped: Sequence, scan) -> list[tuple]:
    if not unwarped:
        raise ValueError("unwarped is an empty list: give at least one image (a path, tensor or array)")
    if not isinstance(scan, (list, tuple)) or len(scan) != len(unwarped):
        count = len(scan) if isinstance(scan, (list, tuple)) else type(scan).__name__
        raise ValueError(f"scan must be a list as long as unwarped ({len(unwarped)}), got {count}")
    return list(zip(unwarped, scan))


def _per_pair(function, unwarped: Sequence, scan) -> torch.Tensor:
    """``function`` on each pair of two lists (of paths or tensors), its results concatenated."""
    return torch.cat([function(one, other) for one, other in _pairs(unwarped, scan)])
