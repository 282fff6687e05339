"""The SIFT Flow dense descriptor: ``sift_flow_descriptor`` and its module twin ``SIFTFlowDescriptor``.

Data flows one way: image -> Sobel gradients -> dominant channel -> orientation bands
(``kernels.py``) -> cell maps at the sampled positions -> 4 x 4 cells -> normalised descriptor
(``sampling.py``). ``paths.compute`` runs them the way the call needs (graph, eager with or
without autograd); the options are checked once, in ``options.descriptor_options``.
"""

from collections.abc import Sequence

import torch
from torch import nn

from siftflow_nn._checks import check_image, describe_value
from siftflow_nn.descriptor.kernels import orientation_basis
from siftflow_nn.descriptor.options import (
    DescriptorOptions,
    describe,
    descriptor_dim,
    descriptor_options,
    output_length,
)
from siftflow_nn.descriptor.paths import compute

__all__ = [
    "SIFTFlowDescriptor",
    "compute_descriptor",
    "descriptor_size",
    "descriptor_to_hwc",
    "sift_flow_descriptor",
    "to_uint8",
]


def descriptor_size(
    height: int,
    width: int,
    cell_size: int | Sequence[int] = 2,
    step_size: int = 1,
    include_boundary: bool = True,
) -> tuple[int, int]:
    """Spatial size ``(H', W')`` of the descriptor of an ``H x W`` image, as the original computes it.

    ``H' = H // step_size`` with the boundary, ``(H - 4 * max(cell_size)) // step_size`` without.

    Example:
        >>> descriptor_size(436, 1024, cell_size=3, step_size=2, include_boundary=False)
        (212, 506)
    """
    options = descriptor_options(cell_size, step_size, include_boundary)
    return output_length(height, options), output_length(width, options)


def sift_flow_descriptor(
    image: torch.Tensor,
    cell_size: int | Sequence[int] = 2,
    step_size: int = 1,
    include_boundary: bool = True,
    num_bins: int = 8,
    *,
    derivative: str = "sobel",
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Dense SIFT Flow descriptor of every pixel (Liu, Yuen, Torralba, TPAMI 2011).

    A faithful port of Ce Liu's ``ImageFeature::imSIFT`` (Sobel version by default): Sobel derivatives with
    replicated borders, per pixel the channel of largest gradient magnitude (the first on ties),
    ``num_bins`` orientation bands ``max(cos, 0)^9 * magnitude``, the original's cell filter, a 4 x 4
    grid of cells at offsets ``(-1, 0, 1, 2) * cell_size`` clamped to the image, and division by
    ``L2 norm + 0.01``. Differentiable; no trainable parameters.

    Args:
        image: ``(B, C, H, W)`` float tensor with values in ``[0, 1]``, any number of channels.
        cell_size: cell size in pixels, or a sequence of them for the original's multi-scale
            descriptor (one block per scale, concatenated; the boundary uses the largest). Default 2.
        step_size: sampling step of the descriptor grid. Default 1.
        include_boundary: if ``True`` (default) the grid starts at 0 and covers the whole image;
            if ``False`` it starts at ``2 * max(cell_size)`` and drops that border.
        num_bins: number of orientation bands. Default 8.
        derivative: ``"sobel"`` (default: ``imSIFT`` of the CPM code base, which ``sift-flow-gpu``
            ported) or ``"release"``: the SIFT flow release's ``mexDenseSIFT``, with the 5-tap
            derivative ``[1 -8 0 8 -1] / 12`` (what DocUNet's evaluation and MATLAB users call).
        out: a tensor of the result's shape, dtype and device to write the result into, as torch's
            ``out=`` arguments do (returned). For loops that recycle one buffer; no autograd. A
            uint8 ``out`` (any memory format, e.g. ``torch.channels_last``, the SIFT flow
            matcher's) receives ``to_uint8`` of the result without a float result ever existing
            whole (on the CPU 2-3x faster than ``to_uint8(sift_flow_descriptor(image))``).

    Returns:
        ``(B, 16 * num_bins * len(cell_size), H', W')`` with ``H' = H // step_size`` (boundary
        included) or ``(H - 4 * max(cell_size)) // step_size``, same for ``W'``. Channel
        ``(4 * row + col) * num_bins + bin`` holds cell (row, col), as in the original. The dtype is
        the image's, or the autocast dtype for a float32 image under ``torch.autocast``.

    Raises:
        TypeError: ``image`` is not a floating-point tensor, or an option is not an int.
        ValueError: ``image`` is not 4-D, is too small for the options, or an option is not positive;
            ``out`` does not fit the result, or autograd would need ``image``'s gradient.

    Example:
        >>> sift_flow_descriptor(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 128, 32, 32])
        >>> sift_flow_descriptor(torch.rand(1, 1, 40, 40), cell_size=[2, 3], step_size=2).shape
        torch.Size([1, 256, 20, 20])
    """
    options = descriptor_options(cell_size, step_size, include_boundary, num_bins, derivative)
    return compute_descriptor(image, options, out=out)


def compute_descriptor(
    image: torch.Tensor, options: DescriptorOptions, out: torch.Tensor | None = None
) -> torch.Tensor:
    """:func:`sift_flow_descriptor` with options already checked (``descriptor_options``): for code
    that holds an options value, such as the losses' functional forms."""
    check_image(image)
    return compute(image, orientation_basis(options.num_bins).to(image.device), options, out)


class SIFTFlowDescriptor(nn.Module):
    r"""Module form of :func:`sift_flow_descriptor`: the options are fixed at construction.

    The orientation basis is a non-persistent buffer, so ``.to(device)`` moves it and checkpoints
    stay empty; the module has no parameters and can sit frozen inside any model.

    Args:
        cell_size: cell size, or a sequence for the multi-scale descriptor. Default 2.
        step_size: sampling step. Default 1.
        include_boundary: keep the image border (``H' = H // step``). Default ``True``.
        num_bins: number of orientation bands. Default 8.
        derivative: ``"sobel"`` (default) or ``"release"``, see :func:`sift_flow_descriptor`.

    Shape:
        - Input: ``(B, C, H, W)``, float in ``[0, 1]``.
        - Output: ``(B, 16 * num_bins * n_scales, H', W')``, see :func:`sift_flow_descriptor`.

    Example:
        >>> desc = SIFTFlowDescriptor(cell_size=2, step_size=1)
        >>> desc(torch.rand(2, 3, 32, 32)).shape
        torch.Size([2, 128, 32, 32])
        >>> desc
        SIFTFlowDescriptor(cell_size=2, step_size=1, include_boundary=True, num_bins=8)
    """

    basis: torch.Tensor
    options: DescriptorOptions

    def __init__(
        self,
        cell_size: int | Sequence[int] = 2,
        step_size: int = 1,
        include_boundary: bool = True,
        num_bins: int = 8,
        derivative: str = "sobel",
    ) -> None:
        super().__init__()
        self.options = descriptor_options(cell_size, step_size, include_boundary, num_bins, derivative)
        self.register_buffer("basis", orientation_basis(self.options.num_bins), persistent=False)

    # The options one at a time, as users and sift-flow-gpu's API know them.
    @property
    def cell_sizes(self) -> list[int]:
        return self.options.cell_sizes

    @property
    def step_size(self) -> int:
        return self.options.step_size

    @property
    def include_boundary(self) -> bool:
        return self.options.include_boundary

    @property
    def num_bins(self) -> int:
        return self.options.num_bins

    @property
    def descriptor_dim(self) -> int:
        """The number of output channels, ``16 * num_bins * len(cell_sizes)``."""
        return descriptor_dim(self.options)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size ``(H', W')`` of the output for an ``H x W`` input."""
        return output_length(height, self.options), output_length(width, self.options)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_image(image)
        return compute(image, self.basis, self.options)

    def extra_repr(self) -> str:
        return describe(self.options)


def to_uint8(descriptor: torch.Tensor) -> torch.Tensor:
    """The original's stored form: ``(unsigned char) min(255 * v, 255)``, i.e. truncated.

    Args:
        descriptor: float tensor of any shape with values in ``[0, 1]``.

    Returns:
        uint8 tensor of the same shape.

    Example:
        >>> to_uint8(torch.tensor([0.0, 0.5, 0.999, 1.2]))
        tensor([  0, 127, 254, 255], dtype=torch.uint8)
    """
    if not isinstance(descriptor, torch.Tensor) or not descriptor.is_floating_point():
        raise TypeError(f"descriptor must be a floating-point torch.Tensor, got {describe_value(descriptor)}")
    # Multiply in float32 at least, as the original does, so bf16/fp16 descriptors truncate alike.
    work_dtype = torch.float64 if descriptor.dtype == torch.float64 else torch.float32
    if descriptor.device.type != "cpu":
        scaled = descriptor.detach().to(work_dtype) * 255
        return scaled.clamp_(0, 255).to(torch.uint8)
    # On the CPU the three passes run chunk by chunk through one cache-sized scratch buffer: three
    # passes over a full-size float temporary cost about 3x more (8 x 128 x 256 x 256: 70 vs 285 ms).
    out = torch.empty(descriptor.shape, dtype=torch.uint8)
    source, target = descriptor.detach().reshape(-1), out.view(-1)
    chunk = 1 << 18
    scratch = torch.empty(min(chunk, source.numel()), dtype=work_dtype)
    for start in range(0, source.numel(), chunk):
        part = scratch[: min(chunk, source.numel() - start)]
        part.copy_(source[start : start + part.numel()]).mul_(255).clamp_(0, 255)
        target[start : start + part.numel()].copy_(part)
    return out


def descriptor_to_hwc(descriptor: torch.Tensor) -> torch.Tensor:
    """Put a ``(B, D, H', W')`` descriptor in the original's ``(B, H', W', D)`` layout.

    ``descriptor_to_hwc(d)[0]`` is what ``mexDenseSIFT`` returns (an ``H' x W' x D`` array). The
    result is a contiguous copy.

    Example:
        >>> descriptor_to_hwc(torch.zeros(2, 128, 5, 7)).shape
        torch.Size([2, 5, 7, 128])
    """
    if not isinstance(descriptor, torch.Tensor) or descriptor.dim() != 4:
        raise ValueError(f"descriptor must be a B x D x H x W tensor, got {describe_value(descriptor)}")
    return descriptor.permute(0, 2, 3, 1).contiguous()
