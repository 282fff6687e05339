"""SIFT Flow: dense correspondence by discrete optimisation over a descriptor pyramid.

Liu, Yuen, Torralba, "SIFT Flow: Dense correspondence across scenes and its applications",
TPAMI 2011, section 3: a truncated L1 data term on SIFT descriptors, a small-displacement term and
a truncated L1 smoothness term, minimised by dual-layer belief propagation, coarse to fine. The
driver follows the original ``SIFTflowc2f.m`` and its defaults; the message passing lives in
``_belief_propagation.py``.
"""

import math
from collections.abc import Sequence

import kornia
import torch
import torch.nn.functional as F
from torch import nn

from siftflow_nn._belief_propagation import Field, energy, range_cost, solve
from siftflow_nn._checks import check_image, check_positive_int, check_same_shape
from siftflow_nn.descriptor import SIFTFlowDescriptor, to_uint8

__all__ = ["SIFTFlow", "data_term", "matlab_round"]

_CHANNEL_CHUNK = 32
_HISTOGRAM_BINS = 20000


def matlab_round(tensor: torch.Tensor) -> torch.Tensor:
    """Round half away from zero, as MATLAB (``torch.round`` rounds half to even)."""
    return torch.sign(tensor) * torch.floor(tensor.abs() + 0.5)


def data_term(
    sift1: torch.Tensor, sift2: torch.Tensor, offset_x: torch.Tensor, offset_y: torch.Tensor, window: int
) -> torch.Tensor:
    """L1 matching costs of every label pair, with the original's default for out-of-image matches.

    Args:
        sift1, sift2: ``(B, D, H, W)`` descriptors on the original's 0..255 scale.
        offset_x, offset_y: ``(B, H, W)`` integer offsets the window is centred on.
        window: window radius ``w``; labels run over ``offset - w .. offset + w``.

    Returns:
        ``(B, H, W, L, L)`` costs indexed ``[b, a]`` (vertical label, horizontal label), ``L = 2w + 1``.
        A match outside image 2 costs the median of the in-image costs of its batch item, found
        as the original does (a 20000-bin histogram, truncated to an integer).
    """
    batch, channels, height, width = sift1.shape
    labels = 2 * window + 1
    ys = torch.arange(height, device=sift1.device).view(1, height, 1)
    xs = torch.arange(width, device=sift1.device).view(1, 1, width)
    flat2 = sift2.reshape(batch, channels, height * width)
    costs = sift1.new_empty(batch, height, width, labels, labels)
    inside = torch.empty(batch, height, width, labels, labels, dtype=torch.bool, device=sift1.device)
    for b in range(labels):
        target_y = ys + offset_y.long() + (b - window)
        for a in range(labels):
            target_x = xs + offset_x.long() + (a - window)
            valid = (target_x >= 0) & (target_x < width) & (target_y >= 0) & (target_y < height)
            index = (target_y.clamp(0, height - 1) * width + target_x.clamp(0, width - 1)).view(batch, 1, -1)
            cost = sift1.new_zeros(batch, height * width)
            for start in range(0, channels, _CHANNEL_CHUNK):
                chunk = flat2[:, start : start + _CHANNEL_CHUNK]
                gathered = chunk.gather(2, index.expand(-1, chunk.shape[1], -1))
                cost += (sift1[:, start : start + _CHANNEL_CHUNK].reshape_as(gathered) - gathered).abs().sum(dim=1)
            costs[..., b, a] = cost.view(batch, height, width)
            inside[..., b, a] = valid
    default = _default_score(costs, inside)
    return torch.where(inside, costs, default.view(batch, 1, 1, 1, 1))


def _default_score(costs: torch.Tensor, inside: torch.Tensor) -> torch.Tensor:
    """Per batch item, the original's default matching score: the histogram median, truncated."""
    defaults = []
    for item_costs, item_inside in zip(costs, inside):
        values = item_costs[item_inside].double()
        if values.numel() == 0:
            defaults.append(costs.new_zeros(()))
            continue
        low, high = values.min(), values.max()
        interval = (high - low) / _HISTOGRAM_BINS
        if interval == 0:
            defaults.append(low.to(costs.dtype))
            continue
        bins = torch.clamp(torch.floor(values / interval), max=_HISTOGRAM_BINS - 1).long()
        cumulative = torch.bincount(bins, minlength=_HISTOGRAM_BINS).cumsum(0)
        median_bin = int(torch.nonzero(2 * cumulative >= values.numel())[0])
        defaults.append(torch.floor(max(median_bin, 1) * interval + low).to(costs.dtype))
    return torch.stack(defaults)


def _downsample(sift: torch.Tensor) -> torch.Tensor:
    """One pyramid step of ``SIFTflowc2f.m`` on uint8-valued images: smooth, halve (bicubic), round."""
    height, width = sift.shape[-2:]
    # MATLAB's imfilter(im, fspecial('gaussian', 5, 0.67), 'same', 'replicate'), on uint8 images.
    smoothed = matlab_round(kornia.filters.gaussian_blur2d(sift, (5, 5), (0.67, 0.67), border_type="replicate"))
    smoothed = smoothed.clamp(0, 255)
    # antialias=True gives the a = -0.5 cubic kernel (MATLAB's) with MATLAB's widening when shrinking.
    size = (math.ceil(height / 2), math.ceil(width / 2))
    return matlab_round(F.interpolate(smoothed, size=size, mode="bicubic", antialias=True)).clamp(0, 255)


def _upsample_flow(flow: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """``round(imresize(flow, size, 'bicubic') * 2)``: the next level's integer offsets."""
    return matlab_round(F.interpolate(flow, size=size, mode="bicubic", antialias=True) * 2)


class SIFTFlow(nn.Module):
    r"""Dense flow between two images by SIFT Flow matching (no trainable weights).

    For ``image1`` and ``image2`` it returns the integer flow ``(u, v)`` with
    ``image2(x + u, y + v) ~ image1(x, y)``, minimising (Liu et al., TPAMI 2011, eq. 3)

    .. math::
        E = \sum_p \|s_1(p) - s_2(p + w)\|_1 + \sum_p \eta (|u| + |v|)
            + \sum_{(p, q)} \min(\alpha |u_p - u_q|, d) + \min(\alpha |v_p - v_q|, d)

    on uint8 SIFT Flow descriptors, by dual-layer belief propagation on a pyramid of descriptor
    images (smoothed and halved ``num_levels - 1`` times), each level searching a window around
    the upsampled flow of the coarser one. The defaults are those of the original code's demo
    (``SIFTflowc2f.m``): descriptors with cell size 3, ``alpha = 2 * 255``, ``d = 40 * 255``,
    ``gamma = 0.005 * 255`` (eta, doubled at each coarser level), 4 levels, window radius 2 below
    the top and 10 at the top, 60 iterations at the top and 18 to 30 below.

    Args:
        alpha: smoothness cost per pixel of flow difference between neighbours.
        d: truncation of the smoothness cost.
        gamma: small-displacement cost per pixel of flow at the finest level.
        num_levels: pyramid levels.
        window: search radius at the levels below the top.
        top_window: search radius at the top level.
        top_iterations: BP iterations at the top level.
        iterations: BP iterations at the finest level (coarser levels run fewer, from 0.6x).
        cell_size, num_bins: descriptor options.
        fast: for large images: a third of the iterations and no in-level hierarchy (see the README
            for what it costs in accuracy).

    Shape:
        - image1, image2: ``(B, C, H, W)`` in ``[0, 1]``.
        - Output: ``(B, 2, H, W)`` float flow with integer values (x then y).

    Example:
        >>> from siftflow_nn.synthetic import translated_pair
        >>> image1, image2, truth = translated_pair(48, 56, dx=2, dy=-1)
        >>> flow = SIFTFlow(num_levels=2, iterations=10, top_iterations=10)(image1[None], image2[None])
        >>> flow[0, :, 24, 28].tolist()
        [2.0, -1.0]
    """

    def __init__(
        self,
        alpha: float = 2 * 255,
        d: float = 40 * 255,
        gamma: float = 0.005 * 255,
        num_levels: int = 4,
        window: int = 2,
        top_window: int = 10,
        top_iterations: int = 60,
        iterations: int = 30,
        cell_size: int | Sequence[int] = 3,
        num_bins: int = 8,
        fast: bool = False,
    ) -> None:
        super().__init__()
        for name, value in (("alpha", alpha), ("d", d), ("gamma", gamma)):
            if not value >= 0:
                raise ValueError(f"{name} must be non-negative, got {value}")
        self.alpha, self.d, self.gamma = float(alpha), float(d), float(gamma)
        self.num_levels = check_positive_int(num_levels, "num_levels")
        self.window = check_positive_int(window, "window")
        self.top_window = check_positive_int(top_window, "top_window")
        self.top_iterations = check_positive_int(top_iterations, "top_iterations")
        self.iterations = check_positive_int(iterations, "iterations")
        self.fast = bool(fast)
        self.descriptor = SIFTFlowDescriptor(cell_size, 1, True, num_bins)

    def extra_repr(self) -> str:
        return (
            f"alpha={self.alpha:g}, d={self.d:g}, gamma={self.gamma:g}, num_levels={self.num_levels}, "
            f"window={self.window}, top_window={self.top_window}, top_iterations={self.top_iterations}, "
            f"iterations={self.iterations}, fast={self.fast}"
        )

    def minimum_size(self) -> int:
        """The smallest height and width the pyramid allows (two pixels at the top level)."""
        return 2 ** (self.num_levels - 1) + 1

    def forward(self, image1: torch.Tensor, image2: torch.Tensor) -> torch.Tensor:
        check_image(image1, "image1")
        check_image(image2, "image2")
        check_same_shape(image1, image2, "image1", "image2")
        with torch.no_grad():
            sift1, sift2 = to_uint8(self.descriptor(torch.cat([image1, image2]))).float().chunk(2)
        return self.match(sift1, sift2)[0]

    @torch.no_grad()
    def match(self, sift1: torch.Tensor, sift2: torch.Tensor) -> tuple[torch.Tensor, list[dict[str, torch.Tensor]]]:
        """Flow between two descriptor images on the 0..255 scale, and what each level did.

        Args:
            sift1, sift2: ``(B, D, H, W)`` descriptors (e.g. ``to_uint8(descriptor).float()``).

        Returns:
            ``(flow, levels)``: the ``(B, 2, H, W)`` flow, and per level (finest first) a dict with
            its ``flow``, ``offset`` (the window centres it searched around) and ``energy``
            (``(iterations, B)``: the energy after each iteration).
        """
        for name, sift in (("sift1", sift1), ("sift2", sift2)):
            if not isinstance(sift, torch.Tensor) or sift.dim() != 4 or not sift.is_floating_point():
                raise ValueError(f"{name} must be a B x D x H x W float tensor, got {getattr(sift, 'shape', sift)}")
        check_same_shape(sift1, sift2, "sift1", "sift2")
        height, width = sift1.shape[-2:]
        if min(height, width) < self.minimum_size():
            raise ValueError(
                f"images of {height} x {width} are too small for num_levels={self.num_levels}: "
                f"height and width must be at least {self.minimum_size()}"
            )
        pyramid = [(sift1, sift2)]
        for _ in range(self.num_levels - 1):
            pyramid.append(tuple(_downsample(sift) for sift in pyramid[-1]))
        ramp = torch.linspace(0.6 * self.iterations, self.iterations, self.num_levels).tolist()
        flow = None
        levels: list[dict[str, torch.Tensor]] = []
        for level in range(self.num_levels - 1, -1, -1):  # 0 is the finest
            level_sift1, level_sift2 = pyramid[level]
            batch, _, level_h, level_w = level_sift1.shape
            if flow is None:
                offset = level_sift1.new_zeros(batch, 2, level_h, level_w)
                window, iterations, hierarchy = self.top_window, self.top_iterations, 2
            else:
                offset = _upsample_flow(flow, (level_h, level_w))
                window = self.window
                iterations, hierarchy = int(matlab_round(torch.tensor(ramp[self.num_levels - 1 - level]))), level
            if self.fast:
                iterations, hierarchy = max(1, iterations // 3), 0
            field = self._level_field(level_sift1, level_sift2, offset, window, level)
            label_x, label_y, energies, _, _ = solve(field, iterations, hierarchy, self.gamma * 2**level)
            flow = torch.stack([offset[:, 0] + label_x - window, offset[:, 1] + label_y - window], dim=1)
            levels.insert(0, {"flow": flow, "offset": offset, "energy": torch.stack(energies)})
        return flow, levels

    def energy(
        self,
        sift1: torch.Tensor,
        sift2: torch.Tensor,
        flow: torch.Tensor,
        offset: torch.Tensor,
        level: int = 0,
        window: int | None = None,
    ) -> torch.Tensor:
        """The energy the original reports for ``flow`` at one pyramid level (``(B,)``, float64).

        ``offset`` is the level's window centres and ``window`` its radius (default: ``self.window``,
        or ``top_window`` at the top level); ``sift1``, ``sift2`` are that level's descriptors.
        """
        if window is None:
            window = self.top_window if level == self.num_levels - 1 else self.window
        field = self._level_field(sift1, sift2, offset, window, level)
        labels = (flow - offset + window).long()
        return energy(field, labels[:, 0], labels[:, 1])

    def _level_field(
        self, sift1: torch.Tensor, sift2: torch.Tensor, offset: torch.Tensor, window: int, level: int
    ) -> Field:
        """The energy's terms at one pyramid level: window centres ``offset``, radius ``window``."""
        gamma = self.gamma * 2**level  # the small-displacement weight doubles at each coarser level
        return Field(
            data_term(sift1, sift2, offset[:, 0], offset[:, 1], window),
            range_cost(offset[:, 0], window, gamma),
            range_cost(offset[:, 1], window, gamma),
            offset[:, 0],
            offset[:, 1],
            window,
            self.alpha,
            self.d,
        )
