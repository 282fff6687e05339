"""Descriptor losses: distances between SIFT Flow descriptors, and a warp loss for unsupervised flow.

``sift_flow_loss`` / ``SIFTFlowLoss`` compare the descriptors of two image batches pixel by pixel;
``sift_flow_warp_loss`` / ``SIFTFlowWarpLoss`` compare image 1's descriptors with image 2's descriptors
warped back by a flow, masked where the warp leaves the image. The descriptor inside is frozen (it has
no parameters); gradients flow to the images and the flow.

``census_loss`` / ``CensusLoss`` are the baseline that unsupervised flow networks use for the same job
(UnFlow, ARFlow): the soft ternary census transform of two images and a soft Hamming distance.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from kornia.color import rgb_to_grayscale
from torch import nn

from siftflow_nn._checks import check_flow, check_image, check_positive_int, check_same_shape
from siftflow_nn.descriptor import SIFTFlowDescriptor, compute_descriptor
from siftflow_nn.descriptor.kernels import at_least_float32
from siftflow_nn.descriptor.options import DescriptorOptions, boundary_shift, descriptor_options, output_length
from siftflow_nn.flow.warp import warp, warp_valid_mask

__all__ = [
    "METRICS",
    "CensusLoss",
    "charbonnier",
    "SIFTFlowLoss",
    "SIFTFlowWarpLoss",
    "census_loss",
    "census_transform",
    "descriptor_distance",
    "sift_flow_loss",
    "sift_flow_warp_loss",
]

#: The descriptor distances a loss can use (``metric=``).
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


def _pixel_mask(mask: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """A ``(B, 1, H, W)`` or ``(B, H, W)`` mask (``B`` may be 1) as ``(B or 1, H, W)``, shape checked."""
    batch, height, width = image.shape[0], image.shape[2], image.shape[3]
    if mask.dim() == 4 and mask.shape[1] == 1:
        mask = mask[:, 0]
    if mask.dim() != 3 or (mask.shape[0] != 1 and mask.shape[0] != batch) or mask.shape[1:] != image.shape[2:]:
        raise ValueError(
            f"mask must have shape {batch} x 1 x {height} x {width} (or {batch} x {height} x {width}) to match "
            f"the images, got {list(mask.shape)}"
        )
    return mask


def _mask_on_grid(mask: torch.Tensor, image: torch.Tensor, options: DescriptorOptions) -> torch.Tensor:
    """A pixel mask read at the descriptor's sample points: ``(B or 1, H', W')`` weights."""
    mask = _pixel_mask(mask, image)
    height, width = image.shape[2], image.shape[3]
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
        >>> round(sift_flow_warp_loss(image, image, torch.zeros(1, 2, 24, 24)).item(), 6)  # bilinear rounding
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


# UnFlow's constants, on grey levels in [0, 255]: the soft sign d / sqrt(0.81 + d^2) is 0.74 for a
# neighbour one grey level brighter and 0.99 beyond six; the soft Hamming distance e^2 / (0.1 + e^2)
# of two such signs is 0.5 at a difference of 0.32 and tends to 1.
_SOFT_SIGN = 0.81
_SOFT_HAMMING = 0.1


def _odd_patch_size(patch_size: int) -> int:
    patch_size = check_positive_int(patch_size, "patch_size")
    if patch_size % 2 == 0:
        raise ValueError(f"patch_size must be odd (a window centred on its pixel), got {patch_size}")
    return patch_size


def _check_patch_size(patch_size: int, image: torch.Tensor) -> int:
    patch_size = _odd_patch_size(patch_size)
    height, width = image.shape[2], image.shape[3]
    if patch_size > min(height, width):
        raise ValueError(
            f"patch_size must fit in the images: a {patch_size} x {patch_size} patch leaves no pixel of "
            f"{height} x {width} images whose patch lies inside"
        )
    return patch_size


def _check_census_image(image: torch.Tensor, name: str) -> None:
    check_image(image, name)
    if image.shape[1] not in (1, 3):
        raise ValueError(f"{name} must have 1 (grey) or 3 (RGB) channels, got {image.shape[1]}")


def census_transform(image: torch.Tensor, patch_size: int = 7) -> torch.Tensor:
    r"""The soft ternary census transform: how each pixel's neighbours compare with it.

    The image is turned into grey levels in ``[0, 255]`` (kornia's ``rgb_to_grayscale`` for RGB);
    for each neighbour at offset ``o`` in a ``patch_size x patch_size`` window, with
    ``d = grey(x + o) - grey(x)``, the output is the soft sign ``d / sqrt(0.81 + d^2)``: about -1, 0
    or +1 for a neighbour darker than the pixel, as bright, or brighter (the ternary census of
    Stein 2004, made differentiable as in UnFlow, Meister et al. 2018, and ARFlow, Liu et al. 2020).
    Adding a constant to the image changes nothing; scaling its contrast changes little wherever
    neighbours differ by more than a grey level or two.

    Args:
        image: ``(B, 1, H, W)`` or ``(B, 3, H, W)`` float images in ``[0, 1]``.
        patch_size: odd side of the window. Default 7, as UnFlow.

    Returns:
        ``(B, patch_size^2 - 1, H, W)``: a channel per neighbour, the window read row by row without
        its centre (which always compares equal). Within ``patch_size // 2`` pixels of the border the
        window reads replicated pixels; :func:`census_loss` leaves those pixels out.

    Example:
        >>> image = torch.zeros(1, 1, 3, 3)
        >>> image[0, 0, 0, 1] = 1.2 / 255  # the neighbour above the centre: 1.2 grey levels brighter
        >>> census_transform(image, patch_size=3)[0, :, 1, 1]
        tensor([0.0000, 0.8000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000, 0.0000])
    """
    _check_census_image(image, "image")
    patch_size = _check_patch_size(patch_size, image)
    return _census(image, patch_size)


def _census(image: torch.Tensor, patch_size: int) -> torch.Tensor:
    grey = at_least_float32(image if image.shape[1] == 1 else rgb_to_grayscale(image)) * 255
    batch, _, height, width = grey.shape
    radius, centre = patch_size // 2, patch_size * patch_size // 2
    padded = F.pad(grey, (radius, radius, radius, radius), mode="replicate")
    window = F.unfold(padded, patch_size).view(batch, patch_size * patch_size, height, width)
    difference = torch.cat([window[:, :centre], window[:, centre + 1 :]], dim=1) - grey
    return difference / (_SOFT_SIGN + difference.square()).sqrt()


def _census_distance(image1: torch.Tensor, image2: torch.Tensor, patch_size: int) -> torch.Tensor:
    """``(B, H, W)`` soft Hamming distance, the mean over neighbours (ARFlow's; UnFlow sums), in [0, 1)."""
    difference = (_census(image1, patch_size) - _census(image2, patch_size)).square()
    return (difference / (_SOFT_HAMMING + difference)).mean(dim=1)


def _census_weights(image: torch.Tensor, mask: torch.Tensor | None, patch_size: int) -> torch.Tensor:
    """Weights ``(B or 1, H, W)``: 0 where the window leaves the image, times the mask."""
    radius = patch_size // 2
    height, width = image.shape[2], image.shape[3]
    inside = torch.zeros(1, height, width, device=image.device, dtype=at_least_float32(image).dtype)
    inside[:, radius : height - radius, radius : width - radius] = 1
    if mask is None:
        return inside
    return inside * _pixel_mask(mask, image).to(inside.dtype)


def census_loss(
    image1: torch.Tensor,
    image2: torch.Tensor,
    mask: torch.Tensor | None = None,
    patch_size: int = 7,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Soft Hamming distance between the census transforms of two image batches, pixel by pixel.

    Per pixel, the mean over the window's neighbours of ``e^2 / (0.1 + e^2)``, with ``e`` the
    difference of the two images' :func:`census_transform`: in ``[0, 1)``, 0 where the two agree on
    which neighbours are darker and which brighter, whatever their brightness and contrast. Pixels
    within ``patch_size // 2`` of the border (whose window leaves the image) do not count.

    For unsupervised flow, compare image 1 with image 2 warped back by the flow, masked where the
    flow leaves the image (as :func:`siftflow_nn.sift_flow_warp_loss` does with descriptors):
    ``census_loss(image1, warp(image2, flow), mask=warp_valid_mask(flow))``.

    Args:
        image1: ``(B, 1, H, W)`` or ``(B, 3, H, W)`` float images in ``[0, 1]``.
        image2: same shape as ``image1``.
        mask: optional ``(B, 1, H, W)`` (or ``(B, H, W)``) weights (finite, non-negative) or bool;
            masked-out pixels do not count. A mask that selects nothing gives NaN with
            ``reduction="mean"``.
        patch_size: odd side of the census window. Default 7.
        reduction: ``"mean"`` (default, over the pixels that count), ``"sum"`` or ``"none"``.

    Returns:
        A scalar, or ``(B, H, W)`` per-pixel distances (0 where they do not count) for
        ``reduction="none"``.

    Example:
        >>> image = torch.rand(2, 3, 16, 16)
        >>> census_loss(image, image)
        tensor(0.)
        >>> bool(census_loss(image, 0.8 * image + 0.1) < 0.01 < census_loss(image, image.flip(-1)))
        True
        >>> image = torch.rand(1, 3, 32, 32)
        >>> shifted = image.roll(1, dims=-1)  # shifted(x + 1, y) = image(x, y): a flow of (1, 0)
        >>> flow = torch.zeros(1, 2, 32, 32)
        >>> flow[:, 0] = 1.0
        >>> warp_loss = lambda flow: census_loss(image, sf.warp(shifted, flow), mask=sf.warp_valid_mask(flow))
        >>> bool(warp_loss(flow) < 0.01 < 0.1 < warp_loss(torch.zeros_like(flow)))
        True
    """
    _check_choice(reduction, REDUCTIONS, "reduction")
    _check_census_pair(image1, image2, mask)
    patch_size = _check_patch_size(patch_size, image1)
    return _reduce(_census_distance(image1, image2, patch_size), _census_weights(image1, mask, patch_size), reduction)


def _check_census_pair(image1: torch.Tensor, image2: torch.Tensor, mask: torch.Tensor | None) -> None:
    _check_census_image(image1, "image1")
    _check_census_image(image2, "image2")
    check_same_shape(image1, image2, "image1", "image2")
    if mask is not None:
        _check_mask(mask)


class CensusLoss(nn.Module):
    r"""Module form of :func:`census_loss`: the census (ternary) loss of UnFlow and ARFlow.

    Args:
        patch_size: odd side of the census window. Default 7.
        reduction: ``"mean"``, ``"sum"`` or ``"none"``. Default ``"mean"``.

    Shape:
        - image1, image2: ``(B, 1, H, W)`` or ``(B, 3, H, W)``; mask: ``(B, 1, H, W)`` or ``(B, H, W)``.
        - Output: scalar, or ``(B, H, W)`` with ``reduction="none"``.

    Example:
        >>> loss = CensusLoss(patch_size=5)
        >>> image = torch.rand(1, 3, 20, 20, requires_grad=True)
        >>> loss(image, torch.rand(1, 3, 20, 20)).backward()
        >>> image.grad.shape
        torch.Size([1, 3, 20, 20])
    """

    def __init__(self, patch_size: int = 7, reduction: str = "mean") -> None:
        super().__init__()
        self.patch_size = _odd_patch_size(patch_size)
        self.reduction = _check_choice(reduction, REDUCTIONS, "reduction")

    def forward(self, image1: torch.Tensor, image2: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        return census_loss(image1, image2, mask, self.patch_size, self.reduction)

    def extra_repr(self) -> str:
        return f"patch_size={self.patch_size}, reduction={self.reduction!r}"
