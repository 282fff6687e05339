"""Descriptor losses: distances between SIFT Flow descriptors, and a warp loss for unsupervised flow.

``sift_flow_loss`` / ``SIFTFlowLoss`` compare the descriptors of two image batches pixel by pixel;
``sift_flow_warp_loss`` / ``SIFTFlowWarpLoss`` compare image 1's descriptors with image 2's descriptors
warped back by a flow, masked where the warp leaves the image. The descriptor inside is frozen (it has
no parameters); gradients flow to the images and the flow.
"""

from collections.abc import Sequence

import torch
from torch import nn

from siftflow_nn._checks import check_flow, check_image, check_same_shape
from siftflow_nn.descriptor import SIFTFlowDescriptor, compute_descriptor
from siftflow_nn.descriptor.kernels import at_least_float32
from siftflow_nn.descriptor.options import DescriptorOptions, boundary_shift, descriptor_options, output_length
from siftflow_nn.flow.warp import warp, warp_valid_mask

__all__ = [
    "METRICS",
    "charbonnier",
    "SIFTFlowLoss",
    "SIFTFlowWarpLoss",
    "descriptor_distance",
    "sift_flow_loss",
    "sift_flow_warp_loss",
]

METRICS = ("l1", "l2", "cosine", "charbonnier")
REDUCTIONS = ("mean", "sum", "none")


def _check_choice(value: str, choices: Sequence[str], name: str) -> str:
    if value not in choices:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, choices))}, got {value!r}")
    return value


def charbonnier(difference: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """``sqrt(difference^2 + eps^2) - eps``, elementwise: a smooth L1, 0 at 0, with a gradient there.

    Example:
        >>> charbonnier(torch.tensor([0.0, 3.0]), eps=4.0)
        tensor([0., 1.])
    """
    return (difference.square() + eps * eps).sqrt() - eps


def descriptor_distance(d1: torch.Tensor, d2: torch.Tensor, metric: str = "l1", eps: float = 1e-3) -> torch.Tensor:
    """Per-pixel distance between two ``(B, D, H, W)`` descriptor maps, shape ``(B, H, W)``.

    Metrics: ``"l1"`` sum of absolute differences (the SIFT Flow data term); ``"l2"`` sum of squared
    differences; ``"cosine"`` ``1 - cos(d1, d2)`` (0 for two zero descriptors); ``"charbonnier"``
    ``sum sqrt(diff^2 + eps^2) - eps``, a smooth L1 whose gradient is defined at 0.

    Example:
        >>> d = torch.rand(2, 128, 4, 5)
        >>> descriptor_distance(d, d, "charbonnier").abs().max() < 1e-6
        tensor(True)
    """
    if not torch.jit.is_scripting():
        _check_choice(metric, METRICS, "metric")
        check_same_shape(d1, d2, "d1", "d2")
    difference = d1 - d2
    if metric == "l1":
        return difference.abs().sum(dim=1)
    if metric == "l2":
        return difference.square().sum(dim=1)
    if metric == "charbonnier":
        return charbonnier(difference, eps).sum(dim=1)
    dot = (d1 * d2).sum(dim=1)
    squares1, squares2 = d1.square().sum(dim=1), d2.square().sum(dim=1)
    norms = squares1 * squares2
    # Guard the sqrt at 0 (zero descriptors of flat regions): the gradient stays finite there. A
    # zero against a non-zero descriptor then has cos 0 (distance 1, as orthogonal ones); two zero
    # descriptors are equal (distance 0).
    norms = torch.where(norms > 0, norms, torch.ones_like(norms)).sqrt()
    both_zero = (squares1 == 0) & (squares2 == 0)
    return torch.where(both_zero, torch.zeros_like(dot), 1 - dot / norms)


def _reduce(distance: torch.Tensor, weights: torch.Tensor | None, reduction: str) -> torch.Tensor:
    """``(B, H, W)`` distances -> scalar (weighted mean or sum) or the masked map for ``"none"``."""
    if weights is not None:
        weights = weights.expand_as(distance)
        distance = distance * weights
    if reduction == "none":
        return distance
    if reduction == "sum":
        return distance.sum()
    if weights is None:
        return distance.mean()
    # The mean over what the weights select; nothing selected gives NaN (as a mean of nothing),
    # never the loss's minimum, which would read as a perfect match.
    return distance.sum() / weights.sum()


def _check_mask(mask: torch.Tensor) -> None:
    """A mask must be a tensor of finite, non-negative weights (a bool mask is fine): a negative or
    infinite weight would make the loss negative or meaningless. (A value check: one sync.)"""
    if not isinstance(mask, torch.Tensor):
        raise TypeError(f"mask must be a torch.Tensor of shape B x 1 x H x W, got {type(mask).__name__}")
    if mask.dtype != torch.bool:
        if not mask.is_floating_point():
            mask = mask.double()
        if not bool(torch.isfinite(mask).all()) or bool((mask < 0).any()):
            low, high = float(mask.min()), float(mask.max())
            raise ValueError(f"mask must hold finite, non-negative weights, got values in [{low:g}, {high:g}]")


def _mask_on_grid(mask: torch.Tensor, image: torch.Tensor, options: DescriptorOptions) -> torch.Tensor:
    """A pixel mask read at the descriptor's sample points: ``(B or 1, H', W')`` weights."""
    batch, height, width = image.shape[0], image.shape[2], image.shape[3]
    if mask.dim() == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.dim() != 3 or (mask.shape[0] != 1 and mask.shape[0] != batch) or mask.shape[1:] != image.shape[2:]:
        raise ValueError(
            f"mask must have shape {batch} x 1 x {height} x {width} (or {batch} x {height} x {width}) to match "
            f"the images, got {list(mask.shape)}"
        )
    out_h, out_w = output_length(height, options), output_length(width, options)
    shift, step = boundary_shift(options), options.step_size
    sampled = mask[:, shift : shift + (out_h - 1) * step + 1 : step, shift : shift + (out_w - 1) * step + 1 : step]
    return at_least_float32(sampled.to(image.dtype))


def _descriptor_loss(
    d1: torch.Tensor, d2: torch.Tensor, weights: torch.Tensor | None, metric: str, reduction: str
) -> torch.Tensor:
    """What :func:`sift_flow_loss` and :class:`SIFTFlowLoss` share once the descriptors exist."""
    return _reduce(descriptor_distance(at_least_float32(d1), at_least_float32(d2), metric), weights, reduction)


def sift_flow_loss(
    image1: torch.Tensor,
    image2: torch.Tensor,
    metric: str = "l1",
    reduction: str = "mean",
    mask: torch.Tensor | None = None,
    cell_size: int | Sequence[int] = 2,
    step_size: int = 1,
    include_boundary: bool = True,
    num_bins: int = 8,
) -> torch.Tensor:
    r"""Distance between the SIFT Flow descriptors of two image batches.

    Args:
        image1: ``(B, C, H, W)`` float images in ``[0, 1]``.
        image2: same shape as ``image1``.
        metric: ``"l1"`` (default), ``"l2"``, ``"cosine"`` or ``"charbonnier"``, see
            :func:`descriptor_distance`.
        reduction: ``"mean"`` (default, over unmasked descriptor pixels), ``"sum"`` or ``"none"``.
        mask: optional ``(B, 1, H, W)`` (or ``(B, H, W)``) weights (finite, non-negative) or bool,
            read at each descriptor's sample point; masked-out pixels do not count. A mask that
            selects nothing gives NaN with ``reduction="mean"``.
        cell_size, step_size, include_boundary, num_bins: descriptor options, see
            :func:`~siftflow_nn.sift_flow_descriptor`.

    Returns:
        A scalar, or ``(B, H', W')`` per-pixel distances for ``reduction="none"``.

    Example:
        >>> image = torch.rand(2, 3, 24, 24)
        >>> sift_flow_loss(image, image)
        tensor(0.)
        >>> sift_flow_loss(image, image.flip(-1), reduction="none").shape
        torch.Size([2, 24, 24])
    """
    _check_choice(metric, METRICS, "metric")
    _check_choice(reduction, REDUCTIONS, "reduction")
    options = descriptor_options(cell_size, step_size, include_boundary, num_bins)
    weights = _check_pair_and_mask(image1, image2, mask, options)
    d1, d2 = compute_descriptor(torch.cat([image1, image2]), options).chunk(2)
    return _descriptor_loss(d1, d2, weights, metric, reduction)


def _check_pair_and_mask(
    image1: torch.Tensor, image2: torch.Tensor, mask: torch.Tensor | None, options: DescriptorOptions
) -> torch.Tensor | None:
    """Check the two image batches and the mask; the mask's weights on the descriptor grid."""
    check_image(image1, "image1")
    check_image(image2, "image2")
    check_same_shape(image1, image2, "image1", "image2")
    if mask is None:
        return None
    _check_mask(mask)
    return _mask_on_grid(mask, image1, options)


class SIFTFlowLoss(nn.Module):
    r"""Module form of :func:`sift_flow_loss`: a frozen descriptor and a distance, options fixed.

    Args:
        metric: ``"l1"``, ``"l2"``, ``"cosine"`` or ``"charbonnier"``. Default ``"l1"``.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. Default ``"mean"``.
        cell_size, step_size, include_boundary, num_bins: descriptor options.

    Shape:
        - image1, image2: ``(B, C, H, W)``; mask: ``(B, 1, H, W)`` or ``(B, H, W)``.
        - Output: scalar, or ``(B, H', W')`` with ``reduction="none"``.

    Example:
        >>> loss = SIFTFlowLoss(metric="charbonnier")
        >>> image = torch.rand(1, 3, 20, 20, requires_grad=True)
        >>> loss(image, torch.rand(1, 3, 20, 20)).backward()
        >>> image.grad.shape
        torch.Size([1, 3, 20, 20])
    """

    def __init__(
        self,
        metric: str = "l1",
        reduction: str = "mean",
        cell_size: int | Sequence[int] = 2,
        step_size: int = 1,
        include_boundary: bool = True,
        num_bins: int = 8,
    ) -> None:
        super().__init__()
        self.metric = _check_choice(metric, METRICS, "metric")
        self.reduction = _check_choice(reduction, REDUCTIONS, "reduction")
        self.descriptor = SIFTFlowDescriptor(cell_size, step_size, include_boundary, num_bins)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        weights: torch.Tensor | None = None
        if not torch.jit.is_scripting():
            weights = _check_pair_and_mask(image1, image2, mask, self.descriptor.options)
        elif mask is not None:
            weights = _mask_on_grid(mask, image1, self.descriptor.options)
        # One descriptor pass over both batches: half the kernel launches on a GPU.
        d1, d2 = self.descriptor(torch.cat([image1, image2])).chunk(2)
        return _descriptor_loss(d1, d2, weights, self.metric, self.reduction)

    def extra_repr(self) -> str:
        return f"metric={self.metric!r}, reduction={self.reduction!r}"


def sift_flow_warp_loss(
    image1: torch.Tensor,
    image2: torch.Tensor,
    flow: torch.Tensor,
    metric: str = "charbonnier",
    reduction: str = "mean",
    cell_size: int | Sequence[int] = 2,
    num_bins: int = 8,
) -> torch.Tensor:
    r"""Unsupervised flow loss: image 1's descriptors against image 2's descriptors warped by ``flow``.

    With ``image2(x + u, y + v) ~ image1(x, y)``, the descriptors of image 2 are warped back with
    :func:`~siftflow_nn.warp` and compared with those of image 1 wherever ``(x + u, y + v)`` stays
    inside image 2. The descriptors are dense (step 1, boundary included) so that they share the
    flow's grid.

    Args:
        image1: ``(B, C, H, W)`` float images in ``[0, 1]``.
        image2: same shape.
        flow: ``(B, 2, H, W)`` predicted flow in pixels, x then y.
        metric: see :func:`descriptor_distance`. Default ``"charbonnier"``.
        reduction: ``"mean"`` (over valid pixels), ``"sum"`` or ``"none"``.
        cell_size, num_bins: descriptor options.

    Returns:
        A scalar, or ``(B, H, W)`` masked per-pixel distances with ``reduction="none"``. A NaN in
        the flow gives NaN (a diverging network sees it); a flow that leaves the image everywhere
        gives NaN with ``reduction="mean"`` (there is nothing to average) and 0 with ``"sum"``.

    Example:
        >>> image = torch.rand(1, 3, 24, 24)
        >>> sift_flow_warp_loss(image, image, torch.zeros(1, 2, 24, 24)).item()
        0.0
    """
    _check_choice(metric, METRICS, "metric")
    _check_choice(reduction, REDUCTIONS, "reduction")
    check_image(image1, "image1")
    check_image(image2, "image2")
    check_same_shape(image1, image2, "image1", "image2")
    check_flow(flow, image1)
    options = descriptor_options(cell_size, 1, True, num_bins)
    d1, d2 = compute_descriptor(torch.cat([image1, image2]), options).chunk(2)
    return descriptor_warp_loss(d1, d2, flow, metric, reduction)


def descriptor_warp_loss(
    d1: torch.Tensor, d2: torch.Tensor, flow: torch.Tensor, metric: str = "charbonnier", reduction: str = "mean"
) -> torch.Tensor:
    """:func:`sift_flow_warp_loss` on descriptors already computed (dense: step 1, boundary included).

    For models that use the descriptors as features too, so that they are computed once.

    Args:
        d1: ``(B, D, H, W)`` descriptors of image 1.
        d2: ``(B, D, H, W)`` descriptors of image 2.
        flow: ``(B, 2, H, W)`` flow in pixels.
        metric, reduction: as in :func:`sift_flow_warp_loss`.
    """
    if not torch.jit.is_scripting():
        _check_choice(metric, METRICS, "metric")
        _check_choice(reduction, REDUCTIONS, "reduction")
        check_same_shape(d1, d2, "d1", "d2")
        check_flow(flow, d1)
    warped = warp(at_least_float32(d2), flow)
    valid = warp_valid_mask(flow)[:, 0].to(warped.dtype)
    return _reduce(descriptor_distance(at_least_float32(d1), warped, metric), valid, reduction)


class SIFTFlowWarpLoss(nn.Module):
    r"""Module form of :func:`sift_flow_warp_loss`.

    Example:
        >>> loss = SIFTFlowWarpLoss()
        >>> flow = torch.zeros(2, 2, 24, 32, requires_grad=True)
        >>> loss(torch.rand(2, 3, 24, 32), torch.rand(2, 3, 24, 32), flow).backward()
        >>> bool(flow.grad.abs().sum() > 0)
        True
    """

    def __init__(
        self,
        metric: str = "charbonnier",
        reduction: str = "mean",
        cell_size: int | Sequence[int] = 2,
        num_bins: int = 8,
    ) -> None:
        super().__init__()
        self.metric = _check_choice(metric, METRICS, "metric")
        self.reduction = _check_choice(reduction, REDUCTIONS, "reduction")
        self.descriptor = SIFTFlowDescriptor(cell_size, 1, True, num_bins)

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_image(image1, "image1")
            check_image(image2, "image2")
            check_same_shape(image1, image2, "image1", "image2")
            check_flow(flow, image1)
        d1, d2 = self.descriptor(torch.cat([image1, image2])).chunk(2)
        return descriptor_warp_loss(d1, d2, flow, self.metric, self.reduction)

    def extra_repr(self) -> str:
        return f"metric={self.metric!r}, reduction={self.reduction!r}"
