"""Aligned Distortion (AD): LD after the affine scaling and shift that best explain the flow,
weighted by the scan's edges.

LD counts a page that is unwarped well but a little larger or shifted as distorted everywhere.
PaperEdge (Ma et al., "Learning From Documents in the Wild to Improve Document Unwarping",
SIGGRAPH 2022) fits that scaling and shift first and measures what is left where the page has
content; UVDoc (Verhoeven et al., 2023) computes it from LD's own flow. This is their
``evalAlignedUnwarp.m`` and ``alignLD.m``, on the scan ``y`` as ``eval.m`` resized it and the
flow ``(vx, vy)`` of ``evalUnwarp`` (half its size):

1. ``g = imgradient(y); g = g / max(g(:))``;
2. ``alignLD``: on the pixels where ``imresize(g, size(vx)) > 0.5``, the least-squares fit of
   ``x ~ sx (x + vx) + tx`` and ``y ~ sy (y + vy) + ty`` (1-based pixel grids), solved by MATLAB's
   ``lsqr`` with its defaults: 4 unknowns, so at most 4 iterations, which are not an exact solve;
3. ``vx' = sx (x + vx) + tx - x``, ``vy'`` likewise, both times ``imresize(g, size(vx))``; AD is the
   mean of ``sqrt(vx'^2 + vy'^2)``.

MATLAB's ``imgradient`` of an integer image is single, and so is everything computed from ``g``:
here too (float32) for the gradient, its resized copy and the weighted flow's lengths; the fit and
the aligned flow are float64, as MATLAB's ``lsqr`` and its flow. The mean is taken in float64:
MATLAB's single sum rounds as it goes (the reference run's, in order, by about 2e-5 relative on
150 000 pixels); with the reference's own fit, its AD is the sum of these lengths in that order.
Four LSQR iterations amplify rounding: the fit's scales agree with MATLAB's to about 1e-9, which
moves the AD of an identical pair (9.0e-6, all of it left by the unfinished solve) by 0.5%, and
that of a distorted one by nothing visible.
"""

from __future__ import annotations

from typing import NamedTuple

import torch

from siftflow_nn import matlab
from siftflow_nn._checks import describe_value

__all__ = ["FlowAlignment", "align_flow", "aligned_distortion_of_flow", "gradient_weights"]

_EDGE_THRESHOLD = 0.5  # alignLD: imresize(g, size(vx)) > 0.5


class FlowAlignment(NamedTuple):
    """``alignLD``'s fit, one row per flow: ``scale`` ``(B, 2)`` float64 ``(sx, sy)`` (MATLAB's
    ``T(1, 1)``, ``T(2, 2)``), ``shift`` ``(B, 2)`` float64 ``(tx, ty)`` (``T(3, 1)``, ``T(3, 2)``),
    ``pixels`` ``(B,)`` int64: how many pixels the fit used."""

    scale: torch.Tensor
    shift: torch.Tensor
    pixels: torch.Tensor


def gradient_weights(scan: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``imresize(g, size)`` with ``g = imgradient(scan) / max``: AD's weights at the flow's size.

    Args:
        scan: ``(B, 1, H, W)``, uint8, uint16 or floating point: ``benchmark_pair``'s scan.
        size: the flow's ``(h, w)``.

    Returns:
        ``(B, 1, h, w)`` float32 (the input's dtype for floating-point scans).

    Raises:
        ValueError: a scan without any edge (a uniform page: MATLAB's ``g / max(g(:))`` is NaN).
    """
    gradient = matlab.imgradient(scan)
    peaks = gradient.amax(dim=(-3, -2, -1), keepdim=True)
    if not bool((peaks > 0).all()):
        uniform = [index for index, peak in enumerate(peaks.flatten().tolist()) if not peak > 0]
        raise ValueError(
            f"scan {uniform[0]} of the batch is uniform (no gradient): its Aligned Distortion is undefined "
            "(MATLAB's g / max(g(:)) is NaN)"
        )
    # resized in float64 and stored as single: the reference run's values (MATLAB's imresize
    # accumulates in double); float32 arithmetic would move the weights by an ulp or two
    return matlab.imresize((gradient / peaks).double(), out_size=tuple(size)).to(gradient.dtype)


def align_flow(flow: torch.Tensor, weights: torch.Tensor) -> FlowAlignment:
    """``alignLD(g, vx, vy)``: the scaling and shift that best map ``(x + vx, y + vy)`` to ``(x, y)``.

    Per flow, the pixels where ``weights > 0.5`` in MATLAB's order (column by column), their rows
    ``[x + vx, 0, 1, 0]`` and ``[0, y + vy, 0, 1]`` interleaved, solved by ``matlab.lsqr`` with its
    defaults.

    Args:
        flow: ``(B, 2, h, w)`` ``(vx, vy)``.
        weights: ``(B, 1, h, w)``: ``gradient_weights``.

    Returns:
        ``FlowAlignment(scale, shift, pixels)``. No pixel over 0.5 gives MATLAB's ``lsqr`` of an
        empty system: scales and shifts 0.

    Example:
        >>> flow = torch.zeros(1, 2, 6, 8)
        >>> flow[:, 0] = 0.1 * torch.arange(1.0, 9.0) - 0.5  # x + vx = 1.1 x - 0.5
        >>> fit = align_flow(flow, torch.ones(1, 1, 6, 8))
        >>> [round(value, 4) for value in fit.scale[0].tolist() + fit.shift[0].tolist()]
        [0.9091, 1.0, 0.4545, 0.0]
    """
    scales, shifts, counts = [], [], []
    for one_flow, one_weights in zip(flow.double(), weights):
        # MATLAB's xx1(g): column-major, so transposed before nonzero (which is row-major)
        columns, rows = (one_weights[0] > _EDGE_THRESHOLD).T.nonzero().unbind(1)
        x, y = columns.double() + 1, rows.double() + 1
        moved_x, moved_y = x + one_flow[0, rows, columns], y + one_flow[1, rows, columns]
        system = torch.zeros(2 * len(x), 4, dtype=torch.float64, device=flow.device)
        system[0::2, 0], system[1::2, 1], system[0::2, 2], system[1::2, 3] = moved_x, moved_y, 1, 1
        solution = matlab.lsqr(system, torch.stack([x, y], dim=1).flatten()).x
        scales.append(solution[:2])
        shifts.append(solution[2:])
        counts.append(len(x))
    return FlowAlignment(torch.stack(scales), torch.stack(shifts), torch.tensor(counts, device=flow.device))


def aligned_distortion_of_flow(flow: torch.Tensor, scan: torch.Tensor) -> torch.Tensor:
    """AD of a flow: ``evalAlignedUnwarp`` after ``evalUnwarp``'s SIFT flow.

    Args:
        flow: ``(B, 2, h, w)`` ``(vx, vy)`` from the scan to the unwarped photo (``docunet_flow``).
        scan: ``(B, 1, H, W)`` uint8 or uint16 (or floating point): the scan as ``benchmark_pair``
            gives it (``H x W`` the benchmark's size; the flow is at about half of it).

    Returns:
        ``(B,)`` float64.

    Example:
        >>> scan = torch.zeros(1, 1, 40, 30, dtype=torch.uint8)
        >>> scan[..., 10:30, 5:25] = 255  # a block: edges both ways
        >>> flow = torch.zeros(1, 2, 20, 15)
        >>> flow[:, 0] = 2.0  # the whole page moved by 2 pixels: aligned back, nothing left
        >>> float(aligned_distortion_of_flow(flow, scan)) < 1e-9
        True
        >>> flow[:, 0, :, 7:] = 1.0  # its right half by 1 pixel only: no scaling and shift explains that
        >>> round(float(aligned_distortion_of_flow(flow, scan)), 4)
        0.0253
    """
    _check(flow, scan)
    weights = gradient_weights(scan, flow.shape[-2:])
    fit = align_flow(flow, weights)
    height, width = flow.shape[-2:]
    grid_y, grid_x = torch.meshgrid(
        torch.arange(1.0, height + 1, dtype=torch.float64, device=flow.device),
        torch.arange(1.0, width + 1, dtype=torch.float64, device=flow.device),
        indexing="ij",
    )
    flow = flow.double()
    scale, shift = fit.scale[:, :, None, None], fit.shift[:, :, None, None]
    aligned = scale * (torch.stack([grid_x, grid_y]) + flow) + shift - torch.stack([grid_x, grid_y])
    # MATLAB: single g .* double v is single, and so are the lengths
    weighted = weights.float() * aligned.float()
    return weighted.square().sum(1).sqrt().double().mean(dim=(-2, -1))


def _check(flow, scan) -> None:
    for name, value, channels in (("flow", flow, 2), ("scan", scan, 1)):
        if not (isinstance(value, torch.Tensor) and value.dim() == 4 and value.shape[1] == channels):
            raise ValueError(f"{name} must be a (B, {channels}, H, W) tensor, got {describe_value(value)}")
        if 0 in value.shape or value.device.type == "meta":
            raise ValueError(f"{name} must hold data, got {describe_value(value)} on {value.device}")
    if not flow.is_floating_point():
        raise TypeError(f"flow must be floating point, got dtype {flow.dtype}")
    if flow.shape[0] != scan.shape[0] or flow.device != scan.device:
        raise ValueError(
            f"flow and scan must hold as many images on one device, got {flow.shape[0]} on {flow.device} "
            f"and {scan.shape[0]} on {scan.device}"
        )
    if not bool(torch.isfinite(flow).all()):
        raise ValueError("flow must be finite (no NaN or inf)")
