"""The numbers MATLAB's functions take (scales, sigmas, data ranges), checked where they come in."""

import math
from typing import Any

import numpy as np
import torch


def positive_number(value: Any, name: str) -> float:
    """``value`` as a float if it is a real number ``> 0`` and finite: a Python, NumPy or 0-d tensor
    number (configs and arrays give all three); a bool, NaN, inf or anything else raises naming
    ``name``."""
    if (
        isinstance(value, torch.Tensor)
        and value.dim() == 0
        and value.device.type != "meta"
        and not (value.dtype == torch.bool or value.is_complex())
    ):
        value = value.item()
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a positive finite number, got {type(value).__name__} {value!r}")
    if not 0 < value < math.inf:  # NaN compares false too
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)
