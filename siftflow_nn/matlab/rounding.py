"""MATLAB's rounding: ``round`` (half away from zero) and the uint8 class's conversions."""

import torch

__all__ = ["as_double", "im2uint8", "matlab_round", "round_to_uint8"]


def matlab_round(tensor: torch.Tensor) -> torch.Tensor:
    """Round half away from zero, as MATLAB (``torch.round`` rounds half to even).

    Example:
        >>> matlab_round(torch.tensor([-2.5, -0.5, 0.5, 1.5, 2.5])).tolist()
        [-3.0, -1.0, 1.0, 2.0, 3.0]
    """
    return torch.sign(tensor) * torch.floor(tensor.abs() + 0.5)


def round_to_uint8(values: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``uint8(values)``: round half away from zero, saturate to 0..255.

    Example:
        >>> round_to_uint8(torch.tensor([-3.0, 0.5, 1.49, 254.5, 300.0])).tolist()
        [0, 1, 1, 255, 255]
    """
    return torch.floor(values + 0.5).clamp_(0, 255).to(torch.uint8)


def im2uint8(image: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``im2uint8``: uint8 stays, floats in ``[0, 1]`` become ``uint8(255 * image)``.

    Example:
        >>> im2uint8(torch.tensor([0.0, 0.5, 1.0])).tolist()
        [0, 128, 255]
    """
    return image if image.dtype == torch.uint8 else round_to_uint8(image.double() * 255)


def as_double(image: torch.Tensor) -> tuple[torch.Tensor, bool]:
    """The working copy of an image for a MATLAB function that keeps its input's class: uint8 is
    computed in float64 (and rounded back by ``back_to_class``), floats in their own dtype."""
    if image.dtype == torch.uint8:
        return image.double(), True
    if not image.is_floating_point():
        raise TypeError(f"image must be uint8 or floating point, got dtype {image.dtype}")
    return image, False


def back_to_class(values: torch.Tensor, was_uint8: bool) -> torch.Tensor:
    """``values`` in the class the input had (``as_double``)."""
    return round_to_uint8(values) if was_uint8 else values
