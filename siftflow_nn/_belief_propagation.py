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


def solve(
    field: Field, iterations: int, hierarchy: int, gamma: float
) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    """Minimise the energy of ``field`` by BP; returns labels (x, y), energies, and the messages.

    ``hierarchy`` levels of 2 x 2-coarsened fields run first (20 iterations each, as the
    original), and their messages initialise the finer field's.
    """
    spatial = dual = None
    if hierarchy > 0 and min(field.offset_x.shape[1:]) >= 2:
        coarse = _coarser(field, gamma / 2)
        *_, coarse_spatial, coarse_dual = solve(coarse, 20, hierarchy - 1, gamma / 2)
        height, width = field.offset_x.shape[1:]

        def finer(tensor: torch.Tensor, spatial_dims: tuple[int, int]) -> torch.Tensor:
            for dim, size in zip(spatial_dims, (height, width)):
                tensor = tensor.repeat_interleave(2, dim=dim).narrow(dim, 0, size)
            return tensor.contiguous()

        spatial = [finer(messages, (2, 3)) for messages in coarse_spatial]
        dual = [finer(messages, (1, 2)) for messages in coarse_dual]
    layers = _layers(field, spatial, dual)
    batch, height, width = field.offset_x.shape
    rows = torch.arange(height, device=field.data.device).view(-1, 1)
    cols = torch.arange(width, device=field.data.device).view(1, -1)
    colours = [((rows + cols) % 2 == colour).expand(batch, height, width) for colour in (0, 1)]
    data_by_a = field.data.transpose(-1, -2).contiguous()
    energies = []
    label_x = label_y = None
    for _ in range(iterations):
        for senders in colours:
            for layer in layers:
                _update_spatial(layer, senders)
            _update_dual(field, data_by_a, layers)
        label_x, label_y = labels_from_beliefs(layers)
        energies.append(energy(field, label_x, label_y))
    if label_x is None:
        label_x, label_y = labels_from_beliefs(layers)
    return (
        label_x,
        label_y,
        energies,
        [layer.spatial for layer in layers],
        [layer.dual for layer in layers],
    )
