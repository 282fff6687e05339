"""Dual-layer loopy belief propagation for the SIFT Flow energy, vectorised over batch and image.

The model is that of Ce Liu's ``BPFlow`` (the matcher behind ``SIFTflowc2f.m``): at every pixel a
horizontal label ``a`` and a vertical label ``b`` in a ``(2w + 1)``-wide window around an integer
offset, flow ``u = offset_x + a - w``, ``v = offset_y + b - w``, and the energy

    E = sum_p D_p(a, b)                                  data: L1 distance of uint8 descriptors
      + sum_p floor(gamma |u_p|) + floor(gamma |v_p|)    small displacement (the original's int)
      + sum_(p,q) min(s |u_p - u_q|, d) + min(s |v_p - v_q|, d)   truncated L1 smoothness

with out-of-image matches scored by the median matching cost (the original's default score).
The u and v layers are separate 4-connected grids joined at each pixel by the data term (the
dual-layer decoupling of the paper), so every message is a min over at most ``2w + 1`` labels.

Schedule: the original sweeps the image sequentially (``_bp_kernels.py`` does, compiled); here,
the portable reference for any device, every message of one checkerboard colour and one layer is
updated at once (red-black BP), then the other colour, then the dual messages between the layers.
All values are integers, kept in float32 (exact below 2**24). Coarser copies of the field (2 x 2
pixels summed, as the original's ``generateCoarserLevel``) run first and seed the messages, which
speeds up the propagation across the image.
"""

from typing import NamedTuple

import torch

from siftflow_nn.flow.pyramid import LevelPlan, descriptor_pyramid, warn_about_float_descriptors

LEFT, RIGHT, UP, DOWN = 0, 1, 2, 3  # message slots: the neighbour the message comes *from*


class Field(NamedTuple):
    """One BP problem: data costs, range costs and offsets of both layers, on one grid."""

    data: torch.Tensor  # (B, H, W, L, L), indexed [b (vertical label), a (horizontal label)]
    range_x: torch.Tensor  # (B, H, W, L)
    range_y: torch.Tensor  # (B, H, W, L)
    offset_x: torch.Tensor  # (B, H, W) integer-valued float
    offset_y: torch.Tensor  # (B, H, W)
    window: int
    smoothness: float  # s: cost per pixel of flow difference between neighbours
    truncation: float  # d: the most a neighbour pair can cost


def _pairwise(field: Field, offset: torch.Tensor, dim: int) -> list[torch.Tensor]:
    """Truncated-L1 costs ``[..., a', a]`` between a pixel (label a) and its next neighbour (a').

    Returns the cost for messages sent forward (to index + 1) and backward (to index - 1), each
    ``(B, H, W, L, L)`` at the sender, with the flow difference including both offsets. The
    sender's label is last, so that the min over it reduces the contiguous dimension.
    """
    labels = torch.arange(2 * field.window + 1, device=offset.device, dtype=offset.dtype)
    steps = (labels.view(1, -1) - labels.view(-1, 1)).view(1, 1, 1, *labels.shape * 2)
    following = torch.roll(offset, -1, dims=dim)  # wrap-around entries are never used
    preceding = torch.roll(offset, 1, dims=dim)
    costs = []
    for neighbour in (following, preceding):
        difference = (offset - neighbour).unsqueeze(-1).unsqueeze(-1) + steps
        costs.append((difference.abs() * field.smoothness).clamp_max(field.truncation))
    return costs


def _send(belief_without_target: torch.Tensor, pairwise: torch.Tensor) -> torch.Tensor:
    """``min_a h(a) + pairwise[a', a]``, normalised so that its minimum is 0."""
    message = (belief_without_target.unsqueeze(-2) + pairwise).amin(dim=-1)
    return message - message.amin(dim=-1, keepdim=True)


def _shift_into(messages: torch.Tensor, sent: torch.Tensor, slot: int, senders: torch.Tensor) -> None:
    """Store messages computed at the senders into the receivers' ``slot``, for masked senders only."""
    if slot == LEFT:  # sent rightwards: receiver is x + 1
        target, source, mask = messages[:, LEFT, :, 1:], sent[:, :, :-1], senders[:, :, :-1]
    elif slot == RIGHT:
        target, source, mask = messages[:, RIGHT, :, :-1], sent[:, :, 1:], senders[:, :, 1:]
    elif slot == UP:  # sent downwards: receiver is y + 1
        target, source, mask = messages[:, UP, 1:], sent[:, :-1], senders[:, :-1]
    else:
        target, source, mask = messages[:, DOWN, :-1], sent[:, 1:], senders[:, 1:]
    target.copy_(torch.where(mask.unsqueeze(-1), source, target))


class _Layer(NamedTuple):
    range_cost: torch.Tensor  # (B, H, W, L)
    spatial: torch.Tensor  # (B, 4, H, W, L): messages into each pixel, by the neighbour they come from
    dual: torch.Tensor  # (B, H, W, L): message from the other layer at the same pixel
    pairwise: list[torch.Tensor]  # right, left, down, up: costs at the sender


def _layers(field: Field, spatial: list[torch.Tensor] | None, dual: list[torch.Tensor] | None) -> list[_Layer]:
    batch, height, width, labels = field.range_x.shape
    layers = []
    for index, (range_cost, offset) in enumerate(((field.range_x, field.offset_x), (field.range_y, field.offset_y))):
        right, left = _pairwise(field, offset, dim=2)
        down, up = _pairwise(field, offset, dim=1)
        messages = spatial[index] if spatial is not None else range_cost.new_zeros(batch, 4, height, width, labels)
        from_dual = dual[index] if dual is not None else torch.zeros_like(range_cost)
        layers.append(_Layer(range_cost, messages, from_dual, [right, left, down, up]))
    return layers


def _update_spatial(layer: _Layer, senders: torch.Tensor) -> None:
    incoming = layer.spatial
    base = layer.range_cost + layer.dual + incoming.sum(dim=1)
    # (slot at the receiver, message coming back from the receiver excluded, pairwise index)
    for slot, excluded, pairwise in ((LEFT, RIGHT, 0), (RIGHT, LEFT, 1), (UP, DOWN, 2), (DOWN, UP, 3)):
        sent = _send(base - incoming[:, excluded], layer.pairwise[pairwise])
        _shift_into(incoming, sent, slot, senders)


def _update_dual(field: Field, data_by_a: torch.Tensor, layers: list[_Layer]) -> None:
    """Messages between the two layers at every pixel; ``data_by_a`` is ``field.data`` as ``[a, b]``."""
    horizontal = layers[0].range_cost + layers[0].spatial.sum(dim=1)  # over a
    vertical = layers[1].range_cost + layers[1].spatial.sum(dim=1)  # over b
    to_vertical = (field.data + horizontal.unsqueeze(-2)).amin(dim=-1)  # min over a -> function of b
    to_horizontal = (data_by_a + vertical.unsqueeze(-2)).amin(dim=-1)  # min over b -> function of a
    layers[1].dual.copy_(to_vertical - to_vertical.amin(dim=-1, keepdim=True))
    layers[0].dual.copy_(to_horizontal - to_horizontal.amin(dim=-1, keepdim=True))


def labels_from_beliefs(layers: list[_Layer]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per layer, the label of least belief (the first one on ties, as the original)."""
    return tuple(  # type: ignore[return-value]
        (layer.range_cost + layer.dual + layer.spatial.sum(dim=1)).argmin(dim=-1) for layer in layers
    )


def energy(field: Field, label_x: torch.Tensor, label_y: torch.Tensor) -> torch.Tensor:
    """The SIFT Flow energy of a labelling, per batch item: ``(B,)`` float64."""
    flow_x = field.offset_x + label_x - field.window
    flow_y = field.offset_y + label_y - field.window
    data = field.data.gather(-1, label_x[..., None, None].expand(*label_x.shape, field.data.shape[-2], 1))
    data = data.squeeze(-1).gather(-1, label_y.unsqueeze(-1)).squeeze(-1)
    total = data.double().sum(dim=(1, 2))
    total += field.range_x.gather(-1, label_x.unsqueeze(-1)).double().sum(dim=(1, 2, 3))
    total += field.range_y.gather(-1, label_y.unsqueeze(-1)).double().sum(dim=(1, 2, 3))
    for flow in (flow_x, flow_y):
        for difference in (flow[:, :, 1:] - flow[:, :, :-1], flow[:, 1:] - flow[:, :-1]):
            total += (difference.abs() * field.smoothness).clamp_max(field.truncation).double().sum(dim=(1, 2))
    return total


def _block_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``(B, H, W, ...)`` over 2 x 2 pixel blocks; an odd last row or column forms smaller blocks."""
    if tensor.shape[1] % 2:
        tensor = torch.cat([tensor, torch.zeros_like(tensor[:, :1])], dim=1)
    if tensor.shape[2] % 2:
        tensor = torch.cat([tensor, torch.zeros_like(tensor[:, :, :1])], dim=2)
    return tensor[:, 0::2, 0::2] + tensor[:, 1::2, 0::2] + tensor[:, 0::2, 1::2] + tensor[:, 1::2, 1::2]


def _coarser(field: Field, gamma: float) -> Field:
    """The original's ``generateCoarserLevel``: 2 x 2 blocks, data summed, offsets averaged (C int division)."""
    count = _block_sum(torch.ones_like(field.offset_x))
    offset_x = torch.div(_block_sum(field.offset_x), count, rounding_mode="trunc")
    offset_y = torch.div(_block_sum(field.offset_y), count, rounding_mode="trunc")
    return Field(
        _block_sum(field.data),
        range_cost(offset_x, field.window, gamma),
        range_cost(offset_y, field.window, gamma),
        offset_x,
        offset_y,
        field.window,
        field.smoothness,
        field.truncation,
    )


def range_cost(offset: torch.Tensor, window: int, gamma: float) -> torch.Tensor:
    """``floor(gamma |offset + a - w|)`` for every label a: ``(B, H, W, 2w + 1)``."""
    labels = torch.arange(-window, window + 1, device=offset.device, dtype=offset.dtype)
    return torch.floor(gamma * (offset.unsqueeze(-1) + labels).abs())


class Solution(NamedTuple):
    """What ``solve`` leaves: the labels after the last iteration, every iteration's energy, and
    the messages (which seed a finer field)."""

    label_x: torch.Tensor  # (B, H, W)
    label_y: torch.Tensor
    energies: list[torch.Tensor]  # per iteration, (B,) float64
    spatial: list[torch.Tensor]  # per layer, (B, 4, H, W, L)
    dual: list[torch.Tensor]  # per layer, (B, H, W, L)


def solve(field: Field, iterations: int, hierarchy: int, gamma: float, energies: str = "every") -> Solution:
    """Minimise the energy of ``field`` by BP.

    ``hierarchy`` levels of 2 x 2-coarsened fields run first (20 iterations each, as the
    original), and their messages initialise the finer field's. ``energies``: the energy after
    ``"every"`` iteration, the ``"last"`` one only, or ``"none"`` (labels only at the end).
    """
    layers = _layers(field, *_seed_from_coarser(field, hierarchy, gamma))
    batch, height, width = field.offset_x.shape
    rows = torch.arange(height, device=field.data.device).view(-1, 1)
    cols = torch.arange(width, device=field.data.device).view(1, -1)
    colours = [((rows + cols) % 2 == colour).expand(batch, height, width) for colour in (0, 1)]
    data_by_a = field.data.transpose(-1, -2).contiguous()
    recorded = []
    for _ in range(iterations):
        for senders in colours:
            for layer in layers:
                _update_spatial(layer, senders)
            _update_dual(field, data_by_a, layers)
        if energies == "every":
            recorded.append(energy(field, *labels_from_beliefs(layers)))
    label_x, label_y = labels_from_beliefs(layers)
    if energies == "last":
        recorded.append(energy(field, label_x, label_y))
    return Solution(label_x, label_y, recorded, [layer.spatial for layer in layers], [layer.dual for layer in layers])


def _seed_from_coarser(field: Field, hierarchy: int, gamma: float):
    """The messages a coarser copy of ``field`` leaves after solving it, at every fine pixel of
    its 2 x 2 block; ``(None, None)`` without a hierarchy."""
    if hierarchy == 0 or min(field.offset_x.shape[1:]) < 2:
        return None, None
    coarse = solve(_coarser(field, gamma / 2), 20, hierarchy - 1, gamma / 2, "none")  # only its messages count
    height, width = field.offset_x.shape[1:]

    def finer(tensor: torch.Tensor, spatial_dims: tuple[int, int]) -> torch.Tensor:
        for dim, size in zip(spatial_dims, (height, width)):
            tensor = tensor.repeat_interleave(2, dim=dim).narrow(dim, 0, size)
        return tensor.contiguous()

    return [finer(messages, (2, 3)) for messages in coarse.spatial], [
        finer(messages, (1, 2)) for messages in coarse.dual
    ]


_CHANNEL_CHUNK = 32
_HISTOGRAM_BINS = 20000


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


def level_field(sift1: torch.Tensor, sift2: torch.Tensor, offset: torch.Tensor, plan: LevelPlan, alpha: float,
                d: float) -> Field:  # fmt: skip
    """The energy's terms at one pyramid level: window centres ``offset`` ``(B, 2, h, w)``, the plan."""
    sift1, sift2, offset = sift1.float(), sift2.float(), offset.float()
    return Field(
        data_term(sift1, sift2, offset[:, 0], offset[:, 1], plan.window),
        range_cost(offset[:, 0], plan.window, plan.gamma),
        range_cost(offset[:, 1], plan.window, plan.gamma),
        offset[:, 0],
        offset[:, 1],
        plan.window,
        alpha,
        d,
    )


class TorchSolver:
    """Pyramids and per-level solutions with torch (any device, batched): the portable reference."""

    def pyramid(self, sift: torch.Tensor, num_levels: int, schedule: str, name: str) -> list[torch.Tensor]:
        """Per level, finest first, the ``(B, D, h, w)`` uint8 levels of descriptors on the 0..255 scale
        (float ones read as the mex reads them: truncated, clamped; NaN, with a warning, as 0)."""
        if sift.is_floating_point():
            nan = int(torch.isnan(sift).sum())
            warn_about_float_descriptors(name, nan, float(sift.nan_to_num(0.0).max()), sift.numel())
            sift = sift.detach().nan_to_num(0.0).clamp(0, 255).to(torch.uint8)
        return descriptor_pyramid(sift, num_levels, schedule)

    @staticmethod
    def level_size(level: torch.Tensor) -> tuple[int, int]:
        return tuple(level.shape[-2:])

    def solve(self, sift1, sift2, offset: torch.Tensor, plan: LevelPlan, alpha: float, d: float, energies: str):
        """One level: labels ``(B, 2, h, w)`` int32 and the energies asked for (``"every"``:
        ``(iterations, B)``, ``"last"``: ``(1, B)``, ``"none"``: ``(0, B)``)."""
        field = level_field(sift1, sift2, offset, plan, alpha, d)
        solution = solve(field, plan.iterations, plan.hierarchy, plan.gamma, energies)
        labels = torch.stack([solution.label_x, solution.label_y], dim=1).to(torch.int32)
        if not solution.energies:
            return labels, torch.zeros(0, sift1.shape[0], dtype=torch.float64, device=sift1.device)
        return labels, torch.stack(solution.energies)
