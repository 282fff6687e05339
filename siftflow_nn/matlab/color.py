"""MATLAB's ``rgb2gray``."""

import torch

from siftflow_nn.matlab.rounding import as_double, back_to_class

__all__ = ["rgb2gray"]

# The first row of inv(the NTSC YIQ matrix), as rgb2gray computes it: not 0.299/0.587/0.114.
RGB2GRAY_WEIGHTS = (0.298936021293775, 0.587043074451121, 0.114020904255103)


def rgb2gray(image: torch.Tensor) -> torch.Tensor:
    """MATLAB's ``rgb2gray`` on ``(..., 3, H, W)`` images.

    uint8 and uint16 input is weighted in float64 and rounded back to its class (half away from
    zero), as MATLAB; floating-point input stays in its dtype.

    Returns:
        ``(..., 1, H, W)`` of the input's dtype.

    Example:
        >>> rgb2gray(torch.tensor([255, 0, 0], dtype=torch.uint8).view(3, 1, 1)).flatten().tolist()
        [76]
    """
    if not isinstance(image, torch.Tensor) or image.dim() < 3 or image.shape[-3] != 3:
        shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
        raise ValueError(f"image must be an RGB tensor (..., 3, H, W), got {shape}")
    values, integer_class = as_double(image)
    red, green, blue = values.unbind(-3)
    gray = red * RGB2GRAY_WEIGHTS[0] + green * RGB2GRAY_WEIGHTS[1] + blue * RGB2GRAY_WEIGHTS[2]
    return back_to_class(gray.unsqueeze(-3), integer_class)
