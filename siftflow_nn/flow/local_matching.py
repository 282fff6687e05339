"""Local descriptor matching: for every pixel on its own, the best-correlated descriptor of image 2
nearby (the seed package's demo). Unlike SIFT flow (``sift_flow.py``) no neighbour has a say, so
the flow is as noisy as the descriptors; ``soft_local_match`` is its differentiable twin.

Displacements are visited one at a time and only running maxima (or running softmax sums) are
kept, so memory stays O(B * H * W) beyond the inputs whatever the radius: the unfolded
``(2r + 1)^2``-window tensor is never built.
"""

from collections.abc import Callable

import torch

from siftflow_nn._checks import check_non_negative_int, check_same_shape, describe_value
from siftflow_nn.flow.correlation import shifted_dot

__all__ = ["displacements", "local_match", "soft_local_match"]


def displacements(radius: int) -> list[tuple[int, int]]:
    """All ``(dx, dy)`` with ``|dx|, |dy| <= radius``, nearest first (so that ties keep small motions).

    Example:
        >>> displacements(1)[:5]
        [(0, 0), (-1, 0), (0, -1), (0, 1), (1, 0)]
    """
    pairs = [(dx, dy) for dy in range(-radius, radius + 1) for dx in range(-radius, radius + 1)]
    return sorted(pairs, key=lambda pair: (pair[0] ** 2 + pair[1] ** 2, pair[0], pair[1]))


def _check_descriptors(d1: torch.Tensor, d2: torch.Tensor, radius: int) -> None:
    for name, value in (("d1", d1), ("d2", d2)):
        if not isinstance(value, torch.Tensor) or value.dim() != 4:
            raise ValueError(f"{name} must be a B x D x H x W descriptor tensor, got {describe_value(value)}")
    check_same_shape(d1, d2, "d1", "d2")
    check_non_negative_int(radius, "radius")  # radius 0 is allowed: the identity match


@torch.no_grad()
def local_match(
    d1: torch.Tensor, d2: torch.Tensor, radius: int = 4, on_displacement: Callable[[], None] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Integer flow by exhaustive local search: the seed package's demo matching.

    For every pixel of ``d1`` the displacement ``(u, v)``, ``|u|, |v| <= radius``, whose ``d2``
    descriptor at ``(x + u, y + v)`` (inside the image) has the largest dot product with it. Ties
    keep the smallest displacement.

    Args:
        d1: ``(B, D, H, W)`` descriptors of image 1 (e.g. from :class:`~siftflow_nn.SIFTFlowDescriptor`).
        d2: same shape, image 2.
        radius: search radius in pixels (of the descriptor grid).
        on_displacement: called after each of the ``(2 radius + 1)^2`` displacements: for progress.

    Returns:
        ``(flow, score)``: ``(B, 2, H, W)`` float flow (x then y, integer values) with
        ``image2(x + u, y + v) ~ image1(x, y)``, and the ``(B, H, W)`` best scores.

    Example:
        >>> d2 = torch.nn.functional.normalize(torch.rand(1, 8, 10, 12), dim=1)
        >>> d1 = torch.roll(d2, shifts=(1, -2), dims=(2, 3))  # d1(x, y) = d2(x + 2, y - 1)
        >>> flow, _ = local_match(d1, d2, radius=3)
        >>> flow[0, :, 5, 5].tolist()
        [2.0, -1.0]
    """
    _check_descriptors(d1, d2, radius)
    batch, _, height, width = d1.shape
    best = torch.full((batch, height, width), float("-inf"), device=d1.device)
    flow = torch.zeros(batch, 2, height, width, device=d1.device)
    for dx, dy in displacements(radius):
        if abs(dx) >= width or abs(dy) >= height:
            if on_displacement is not None:
                on_displacement()
            continue
        score, (rows, cols) = shifted_dot(d1, d2, dx, dy)
        region = best[:, rows, cols]
        better = score > region
        region.copy_(torch.where(better, score, region))
        flow[:, 0, rows, cols] = torch.where(better, float(dx), flow[:, 0, rows, cols])
        flow[:, 1, rows, cols] = torch.where(better, float(dy), flow[:, 1, rows, cols])
        if on_displacement is not None:
            on_displacement()
    return flow, best


def soft_local_match(d1: torch.Tensor, d2: torch.Tensor, radius: int = 4, temperature: float = 0.02) -> torch.Tensor:
    """Differentiable local matching: the softmax-weighted mean displacement over the window.

    ``flow(x) = sum_k softmax_k(<d1(x), d2(x + k)> / temperature) * k`` over the displacements k
    of the window that stay inside image 2. As ``temperature -> 0`` it tends to :func:`local_match`.
    The softmax is streamed (running maximum and sums), so the forward pass keeps O(B * H * W)
    memory; autograd keeps one score map per displacement for the backward pass.

    Args:
        d1, d2: ``(B, D, H, W)`` descriptors.
        radius: search radius in pixels.
        temperature: softmax temperature in units of the descriptor dot product.

    Returns:
        ``(B, 2, H, W)`` flow, differentiable with respect to ``d1`` and ``d2``.
    """
    _check_descriptors(d1, d2, radius)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    batch, _, height, width = d1.shape
    with torch.no_grad():  # the running maximum only stabilises the exponentials
        maximum = torch.full((batch, height, width), float("-inf"), device=d1.device)
        for dx, dy in displacements(radius):
            if abs(dx) < width and abs(dy) < height:
                score, (rows, cols) = shifted_dot(d1, d2, dx, dy)
                maximum[:, rows, cols] = torch.maximum(maximum[:, rows, cols], score)
    total = d1.new_zeros(batch, height, width, dtype=torch.float32)
    mean_x, mean_y = torch.zeros_like(total), torch.zeros_like(total)
    for dx, dy in displacements(radius):
        if abs(dx) >= width or abs(dy) >= height:
            continue
        score, (rows, cols) = shifted_dot(d1, d2, dx, dy)
        weight = ((score - maximum[:, rows, cols]) / temperature).exp()
        total[:, rows, cols] = total[:, rows, cols] + weight
        mean_x[:, rows, cols] = mean_x[:, rows, cols] + dx * weight
        mean_y[:, rows, cols] = mean_y[:, rows, cols] + dy * weight
    return torch.stack([mean_x / total, mean_y / total], dim=1)
