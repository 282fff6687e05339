"""Argument checks at the API boundary: fail early, name the argument, say what was expected.

Kornia's checks (``KORNIA_CHECK_SHAPE``, ``KORNIA_CHECK_IS_TENSOR``) decide; the messages are ours,
since they name the argument and say how to fix the call.

Only shape, type and option checks live here: they cost no device synchronisation, so they are
safe to run in every ``forward``. Value checks (ranges, NaN) would force a GPU sync and stay out.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from kornia.core.check import KORNIA_CHECK_IS_TENSOR, KORNIA_CHECK_SHAPE


def describe_value(value: Any) -> str:
    """What a value is, for messages: a tensor's or array's dtype and shape, else its type's name."""
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, np.ndarray):
        return f"a {value.dtype} array of shape {value.shape}"
    return type(value).__name__


def check_planes(value: Any, name: str = "image") -> torch.Tensor:
    """A tensor ``(..., H, W)`` with ``H, W > 0`` (the MATLAB-style image functions' input)."""
    if not isinstance(value, torch.Tensor) or value.dim() < 2 or 0 in value.shape[-2:]:
        raise ValueError(f"{name} must be a tensor (..., H, W) with H, W > 0, got {describe_value(value)}")
    return value


def as_int(value: Any, name: str, expected: str = "an int") -> int:
    """``value`` as an ``int``: an int, a NumPy integer or a 0-d integer tensor (configs produce
    them); a bool, a float or anything else raises a TypeError naming ``name``."""
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be {expected}, got bool {value!r}")
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_floating_point():
        if value.dtype not in (torch.bool, torch.complex64, torch.complex128):
            return int(value)
    raise TypeError(f"{name} must be {expected}, got {type(value).__name__} {value!r}")


def check_positive_int(value: Any, name: str) -> int:
    """``value`` as an int if it is a positive integer (not a bool), else raise naming ``name``."""
    value = as_int(value, name, "a positive int")
    if value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value}")
    return value


def check_non_negative_int(value: Any, name: str) -> int:
    """``value`` as an int if it is an integer >= 0 (not a bool), else raise naming ``name``."""
    value = as_int(value, name, "a non-negative int")
    if value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value}")
    return value


def check_bool(value: Any, name: str) -> bool:
    """``value`` as a bool if it is one (a Python, NumPy or 0-d tensor bool), else a TypeError:
    a string such as ``"no"`` would otherwise read as True."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, torch.Tensor) and value.dim() == 0 and value.dtype == torch.bool:
        return bool(value)
    raise TypeError(f"{name} must be a bool, got {type(value).__name__} {value!r}")


def check_non_negative_number(value: Any, name: str) -> float:
    """``value`` as a float if it is a real number >= 0 and finite (not a bool), else raise."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a non-negative number, got {type(value).__name__} {value!r}")
    if not 0 <= value < float("inf"):
        raise ValueError(f"{name} must be a non-negative finite number, got {value}")
    return float(value)


def check_cell_sizes(cell_size: Any) -> tuple[int, ...]:
    """Normalise ``cell_size`` (an int, or a non-empty sequence of ints) to a tuple of ints."""
    if isinstance(cell_size, Sequence) and not isinstance(cell_size, str):
        if len(cell_size) == 0:
            raise ValueError("cell_size must be a positive int or a non-empty sequence of them, got []")
        return tuple(check_positive_int(c, f"cell_size[{i}]") for i, c in enumerate(cell_size))
    return (check_positive_int(cell_size, "cell_size"),)


def check_image(image: Any, name: str = "image") -> torch.Tensor:
    """Check that ``image`` is a floating-point tensor of shape B x C x H x W with B, C, H, W >= 1."""
    if not KORNIA_CHECK_IS_TENSOR(image, raises=False):
        raise TypeError(f"{name} must be a torch.Tensor of shape B x C x H x W, got {type(image).__name__}")
    if not KORNIA_CHECK_SHAPE(image, ["B", "C", "H", "W"], raises=False):
        raise ValueError(
            f"{name} must have shape B x C x H x W (4 dimensions), got {image.dim()} dimensions "
            f"with shape {tuple(image.shape)}; add a batch dimension with {name}[None] for one image"
        )
    if not image.is_floating_point():
        raise TypeError(
            f"{name} must be a floating-point tensor with values in [0, 1], got dtype {image.dtype}; "
            f"convert and scale it first, e.g. {name}.float() / 255 for uint8"
        )
    if image.numel() == 0:
        raise ValueError(f"{name} must not be empty, got shape {tuple(image.shape)}")
    if image.device.type == "meta":
        raise ValueError(f"{name} is on the meta device (a shape without data): move it to cpu or cuda first")
    return image


def check_same_shape(a: torch.Tensor, b: torch.Tensor, name_a: str, name_b: str) -> None:
    """Raise a ValueError naming both arguments and shapes when ``a`` and ``b`` differ in shape."""
    if a.shape != b.shape:
        raise ValueError(f"{name_a} and {name_b} must have the same shape, got {tuple(a.shape)} and {tuple(b.shape)}")


def check_flow(flow: Any, image: torch.Tensor, name: str = "flow") -> torch.Tensor:
    """Check that ``flow`` is a B x 2 x H x W float tensor matching ``image``'s batch and size."""
    if not KORNIA_CHECK_IS_TENSOR(flow, raises=False):
        raise TypeError(f"{name} must be a torch.Tensor of shape B x 2 x H x W, got {type(flow).__name__}")
    b, _, h, w = image.shape
    if not KORNIA_CHECK_SHAPE(flow, ["B", "2", "H", "W"], raises=False) or flow.shape != (b, 2, h, w):
        raise ValueError(f"{name} must have shape {b} x 2 x {h} x {w} to match the image, got {tuple(flow.shape)}")
    if not flow.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {flow.dtype}")
    return flow
