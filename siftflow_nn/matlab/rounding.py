"""MATLAB's rounding and its integer image classes: ``round`` (half away from zero), ``uint8`` and
``uint16`` (rounded and saturated), ``im2uint8`` and ``im2double``.

uint16 images are ``torch.uint16`` tensors: torch has few operations for that dtype, but every
function here only converts it to float64 and back, which it has.
"""

import torch

__all__ = ["as_double", "class_range", "im2double", "im2uint8", "matlab_round", "round_to_class", "round_to_uint8"]

# MATLAB's integer image classes and their ranges (getrangefromclass: 0 .. intmax).
INTEGER_CLASSES = {torch.uint8: 255, torch.uint16: 65535}


def matlab_round(tensor: torch.Tensor) -> torch.Tensor:
    """Round half away from zero, as MATLAB (``torch.round`` rounds half to even).

    Example:
        >>> matlab_round(torch.tensor([-2.5, -0.5, 0.5, 1.5, 2.5])).tolist()
        [-3.0, -1.0, 1.0, 2.0, 3.0]
    """
    return torch.sign(tensor) * torch.floor(tensor.abs() + 0.5)


def round_to_class(values: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """MATLAB's ``uint8(values)`` or ``uint16(values)``: round half away from zero, saturate to
    ``0 .. intmax``. ``values``: non-negative or not, any floating dtype; ``dtype``: ``torch.uint8``
    or ``torch.uint16``.

    Example:
        >>> round_to_class(torch.tensor([-3.0, 0.5, 65534.5, 70000.0]), torch.uint16).tolist()
        [0, 1, 65535, 65535]
    """
    if dtype not in INTEGER_CLASSES:
        raise ValueError(f"dtype must be torch.uint8 or torch.uint16, got {dtype}")
    return torch.floor(values + 0.5).clamp_(0, INTEGER_CLASSES[dtype]).to(dtype)


def round_to_uint8(values: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``uint8(values)``: round half away from zero, saturate to 0..255.

    Example:
        >>> round_to_uint8(torch.tensor([-3.0, 0.5, 1.49, 254.5, 300.0])).tolist()
        [0, 1, 1, 255, 255]
    """
    return round_to_class(values, torch.uint8)


def class_range(dtype: torch.dtype) -> float:
    """The range of an image class, as MATLAB's ``diff(getrangefromclass(image))``: 255 for uint8,
    65535 for uint16, 1 for floating point.

    Example:
        >>> class_range(torch.uint16), class_range(torch.float32)
        (65535.0, 1.0)
    """
    if dtype in INTEGER_CLASSES:
        return float(INTEGER_CLASSES[dtype])
    if not dtype.is_floating_point:
        raise TypeError(f"image must be uint8, uint16 or floating point, got dtype {dtype}")
    return 1.0


def im2uint8(image: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``im2uint8``: uint8 stays, uint16 becomes ``uint8(image / 257)``, floats in
    ``[0, 1]`` become ``uint8(255 * image)``.

    Example:
        >>> im2uint8(torch.tensor([0.0, 0.5, 1.0])).tolist()
        [0, 128, 255]
    """
    if image.dtype == torch.uint8:
        return image
    if image.dtype == torch.uint16:
        return round_to_uint8(image.double() / 257)
    return round_to_uint8(image.double() * 255)


def im2double(image: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``im2double``: uint8 and uint16 divided by their range into float64, floats as
    they are.

    Example:
        >>> im2double(torch.tensor([0, 65535], dtype=torch.uint16)).tolist()
        [0.0, 1.0]
    """
    if image.dtype in INTEGER_CLASSES:
        return image.double() / INTEGER_CLASSES[image.dtype]
    class_range(image.dtype)  # other dtypes are refused there
    return image


def as_double(image: torch.Tensor) -> tuple[torch.Tensor, torch.dtype | None]:
    """The working copy of an image for a MATLAB function that keeps its input's class: uint8 and
    uint16 are computed in float64 (and rounded back by ``back_to_class``), floats in their own
    dtype. Returns the values and the integer class to go back to (``None`` for floats)."""
    if image.dtype in INTEGER_CLASSES:
        return image.double(), image.dtype
    class_range(image.dtype)
    return image, None


def back_to_class(values: torch.Tensor, integer_class: torch.dtype | None) -> torch.Tensor:
    """``values`` in the class the input had (``as_double``'s second result)."""
    return values if integer_class is None else round_to_class(values, integer_class)
