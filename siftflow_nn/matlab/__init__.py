"""MATLAB's image functions as the original SIFT Flow and DocUNet scripts call them.

Each follows MATLAB's documented algorithm and its class rules: on uint8 and uint16 images (the
latter as ``torch.uint16`` tensors) the work is done in float64 and rounded back to the class (half
away from zero, saturating) where MATLAB rounds, which moves the metrics built on them
(``../shared/reference/docunet``'s README shows by how much); on floating-point images the dtype
is kept. All take ``(..., H, W)`` tensors on any device.

- ``rgb2gray``: MATLAB's weights (0.298936, 0.587043, 0.114021), not Pillow's;
- ``imresize``: bicubic (a = -0.5), antialiased when shrinking, symmetric borders, per axis;
- ``gaussian_filter``: ``imfilter(image, fspecial('gaussian', n, sigma), 'same', 'replicate')``;
- ``impyramid_reduce``: ``impyramid(image, 'reduce')``;
- ``ssim``: ``ssim(A, ref)`` with the default 11 x 11 window (sigma 1.5) and K = (0.01, 0.03);
- ``imgradient``: the Sobel gradient magnitude, single for integer images;
- ``lsqr``: LSQR with MATLAB's defaults and stopping rules (a dense float64 system);
- ``matlab_round``, ``round_to_class``, ``round_to_uint8``, ``im2uint8``, ``im2double``,
  ``class_range``: MATLAB's rounding and its image classes.
"""

from siftflow_nn.matlab.color import rgb2gray
from siftflow_nn.matlab.filters import gaussian_filter, gaussian_taps, impyramid_reduce
from siftflow_nn.matlab.gradient import imgradient
from siftflow_nn.matlab.lsqr import LSQRResult, lsqr
from siftflow_nn.matlab.resize import apply_taps, dyadic_taps, imresize, resize_plan, resize_weights
from siftflow_nn.matlab.rounding import (
    class_range,
    im2double,
    im2uint8,
    matlab_round,
    round_to_class,
    round_to_uint8,
)
from siftflow_nn.matlab.ssim import ssim

__all__ = [
    "LSQRResult",
    "apply_taps",
    "class_range",
    "dyadic_taps",
    "gaussian_filter",
    "gaussian_taps",
    "im2double",
    "im2uint8",
    "imgradient",
    "impyramid_reduce",
    "imresize",
    "lsqr",
    "matlab_round",
    "resize_plan",
    "resize_weights",
    "rgb2gray",
    "round_to_class",
    "round_to_uint8",
    "ssim",
]
