"""End-point error: the mean Euclidean distance between an estimated and a true flow."""

import torch


def end_point_error(flow: torch.Tensor, truth: torch.Tensor, margin: int = 0) -> torch.Tensor:
    """Mean of ``||flow - truth||`` over pixels (and batch), leaving out a ``margin`` at the border
    (where part of the true match may lie outside the image).

    Args:
        flow, truth: ``(..., 2, H, W)`` flows, x then y.
        margin: pixels left out on every side.

    Returns:
        A scalar tensor.

    Example:
        >>> end_point_error(torch.zeros(2, 4, 5), torch.ones(2, 4, 5))
        tensor(1.4142)
    """
    if flow.shape != truth.shape or flow.dim() < 3 or flow.shape[-3] != 2:
        raise ValueError(f"flow and truth must have one shape (..., 2, H, W), got {tuple(flow.shape)} and "
                         f"{tuple(truth.shape)}")  # fmt: skip
    height, width = flow.shape[-2:]
    if not 0 <= 2 * margin < min(height, width):
        raise ValueError(f"margin must leave some of the {height} x {width} flow, got {margin}")
    distance = (flow - truth).square().sum(dim=-3).sqrt()
    return distance[..., margin : height - margin, margin : width - margin].mean()
