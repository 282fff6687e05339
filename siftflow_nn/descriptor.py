"""The SIFT Flow dense descriptor: ``sift_flow_descriptor`` and its module twin ``SIFTFlowDescriptor``.

Data flows one way: image -> Sobel gradients -> dominant channel -> orientation bands -> cell maps
-> 4 x 4 sampled cells -> normalised descriptor. Each stage is one function in ``_kernels.py`` or
``_sampling.py``; without autograd, eager mode runs them a strip of rows at a time (``_row_strips.py``).
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from siftflow_nn._checks import check_bool, check_cell_sizes, check_image, check_positive_int
from siftflow_nn._kernels import dominant_gradient, orientation_bands, orientation_basis, sobel_gradients
from siftflow_nn._row_strips import strip_height, write_strip
from siftflow_nn._sampling import (
    AxisPlan,
    ScaledGather,
    ScaleSamples,
    filter_margins,
    flatten_scales,
    gather_with_cat,
    minimum_length,
    output_length,
    plan_axis,
    sample_scale,
)

__all__ = [
    "SIFTFlowDescriptor",
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
    largest = max(check_cell_sizes(cell_size))
    step_size = check_positive_int(step_size, "step_size")
    return (
        output_length(height, largest, step_size, include_boundary),
        output_length(width, largest, step_size, include_boundary),
    )


def output_dtype(image: torch.Tensor) -> torch.dtype:
    """Under autocast a float32 image gives a descriptor in the autocast dtype; otherwise its own."""
    if not torch.jit.is_scripting():
        device_type = image.device.type
        if image.dtype == torch.float32 and torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    return image.dtype


def _filter_input(image: torch.Tensor) -> torch.Tensor:
    """The image in the dtype the filters run in: half-precision inputs are filtered in float32
    (cheap: a few channels); only the 16x larger output is written in the low precision."""
    if image.dtype == torch.float16 or image.dtype == torch.bfloat16:
        return image.float()
    return image


def _sample_scales(
    image: torch.Tensor,
    basis: torch.Tensor,
    cell_sizes: list[int],
    plans: list[tuple[AxisPlan, AxisPlan]],
    step_size: int,
    include_boundary: bool,
    out_h: int,
    out_w: int,
) -> list[ScaleSamples]:
    """Image -> gradients -> bands -> per cell size, the sampled cell maps and descriptor norms."""
    work = _filter_input(image)
    gx, gy = dominant_gradient(*sobel_gradients(work))
    # Pad the two one-channel gradient maps rather than the num_bins-channel band maps: the bands
    # are pointwise in the gradient, so they come out replicate-padded for the cell filter.
    height, width = image.shape[-2], image.shape[-1]
    low, high = filter_margins(cell_sizes, step_size, include_boundary)
    gradients = F.pad(torch.cat([gx, gy], dim=1), [low, high, low, high], mode="replicate")
    bands = orientation_bands(gradients[:, :1], gradients[:, 1:], basis.to(work.dtype))
    return [
        sample_scale(bands, (low, low), (height, width), cs, rows, cols, out_h, out_w)
        for cs, (rows, cols) in zip(cell_sizes, plans)
    ]


def _sift_flow(
    image: torch.Tensor,
    basis: torch.Tensor,
    cell_sizes: list[int],
    step_size: int,
    include_boundary: bool,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """The computation shared by the function and the module; ``basis`` is ``(2, num_bins)``."""
    height, width = image.shape[-2], image.shape[-1]
    largest = max(cell_sizes)
    out_h = output_length(height, largest, step_size, include_boundary)
    out_w = output_length(width, largest, step_size, include_boundary)
    if out_h < 1 or out_w < 1:
        smallest = minimum_length(largest, step_size, include_boundary)
        raise ValueError(
            f"image of size {height} x {width} is too small for cell_size={cell_sizes}, step_size={step_size}, "
            f"include_boundary={include_boundary}: height and width must be at least {smallest}"
        )
    out_dtype = output_dtype(image)
    shift = 0 if include_boundary else 2 * largest
    plans = [(plan_axis(out_h, cs, step_size, shift), plan_axis(out_w, cs, step_size, shift)) for cs in cell_sizes]
    if not torch.jit.is_scripting():
        if out is not None:
            _check_out(out, [image.shape[0], 16 * basis.shape[1] * len(cell_sizes), out_h, out_w], out_dtype, image)
    if not torch.jit.is_scripting():
        if not _in_graph_capture():
            return _sift_flow_eager(
                image, basis, cell_sizes, plans, step_size, include_boundary, out_h, out_w, out_dtype, out
            )
    scales = _sample_scales(image, basis, cell_sizes, plans, step_size, include_boundary, out_h, out_w)
    result = gather_with_cat(scales, out_h, out_w, out_dtype)
    return result if out is None else out.copy_(result)


def _check_out(out: torch.Tensor, shape: list[int], dtype: torch.dtype, image: torch.Tensor) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor or None, got {type(out).__name__}")
    if list(out.shape) != shape or out.dtype != dtype or out.device != image.device:
        raise ValueError(
            f"out must be a {dtype} tensor of shape {tuple(shape)} on {image.device}, "
            f"got a {out.dtype} tensor of shape {tuple(out.shape)} on {out.device}"
        )
    if torch.is_grad_enabled() and image.requires_grad:
        raise ValueError("out= does not support autograd: image requires grad; call without out, or under no_grad")


def _in_graph_capture() -> bool:
    """True while torch.compile, torch.export, ONNX export or jit.trace records the computation."""
    return torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()


@torch.jit.unused
def _sift_flow_eager(
    image: torch.Tensor,
    basis: torch.Tensor,
    cell_sizes: list[int],
    plans: list[tuple[AxisPlan, AxisPlan]],
    step_size: int,
    include_boundary: bool,
    out_h: int,
    out_w: int,
    out_dtype: torch.dtype,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Eager mode: write each descriptor element once, straight into the result (or ``out``)."""
    batch = image.shape[0]
    shape = (batch, 16 * basis.shape[1] * len(cell_sizes), out_h, out_w)
    if torch.is_grad_enabled() and image.requires_grad:
        scales = _sample_scales(image, basis, cell_sizes, plans, step_size, include_boundary, out_h, out_w)
        layout, tensors = flatten_scales(scales)
        return ScaledGather.apply(layout, out_dtype, shape, *tensors)
    if out is None:
        out = torch.empty(shape, dtype=out_dtype, device=image.device)
    # On the CPU, go one image and one strip of rows at a time (see _row_strips.py): fresh buffers
    # of many MiB cost a page fault per 4 KiB, and a strip's intermediates are recycled and cached.
    # A GPU gets the whole batch at once: there, fewer and larger kernels win.
    work = _filter_input(image)
    basis = basis.to(work.dtype)
    margins = filter_margins(cell_sizes, step_size, include_boundary)
    shift = 0 if include_boundary else 2 * max(cell_sizes)
    col_plans = [cols for _, cols in plans]
    on_cpu = image.device.type == "cpu"
    chunk = 1 if on_cpu else batch
    band_width = image.shape[-1] + margins[0] + margins[1]
    strip = strip_height(out_h, band_width, basis.shape[1], step_size, work.element_size()) if on_cpu else out_h
    with torch.no_grad():
        for start in range(0, batch, chunk):
            for first_row in range(0, out_h, strip):
                target = out[start : start + chunk, :, first_row : first_row + strip]
                write_strip(
                    target,
                    work[start : start + chunk],
                    basis,
                    cell_sizes,
                    col_plans,
                    margins,
                    step_size,
                    shift,
                    first_row,
                )
    return out


def sift_flow_descriptor(
    image: torch.Tensor,
    cell_size: int | Sequence[int] = 2,
    step_size: int = 1,
    include_boundary: bool = True,
    num_bins: int = 8,
    *,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    r"""Dense SIFT Flow descriptor of every pixel (Liu, Yuen, Torralba, TPAMI 2011).

    A faithful port of Ce Liu's ``ImageFeature::imSIFT`` (Sobel version): Sobel derivatives with
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
        out: a tensor of the result's shape, dtype and device to write the result into, as torch's
            ``out=`` arguments do (returned). For loops that recycle one buffer; no autograd.

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
    cell_sizes = list(check_cell_sizes(cell_size))
    step_size = check_positive_int(step_size, "step_size")
    num_bins = check_positive_int(num_bins, "num_bins")
    include_boundary = check_bool(include_boundary, "include_boundary")
    check_image(image)
    basis = orientation_basis(num_bins).to(image.device)
    return _sift_flow(image, basis, cell_sizes, step_size, include_boundary, out)


class SIFTFlowDescriptor(nn.Module):
    r"""Module form of :func:`sift_flow_descriptor`: the options are fixed at construction.

    The orientation basis is a non-persistent buffer, so ``.to(device)`` moves it and checkpoints
    stay empty; the module has no parameters and can sit frozen inside any model.

    Args:
        cell_size: cell size, or a sequence for the multi-scale descriptor. Default 2.
        step_size: sampling step. Default 1.
        include_boundary: keep the image border (``H' = H // step``). Default ``True``.
        num_bins: number of orientation bands. Default 8.

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
    cell_sizes: list[int]

    def __init__(
        self,
        cell_size: int | Sequence[int] = 2,
        step_size: int = 1,
        include_boundary: bool = True,
        num_bins: int = 8,
    ) -> None:
        super().__init__()
        self.cell_sizes = list(check_cell_sizes(cell_size))
        self.step_size = check_positive_int(step_size, "step_size")
        self.include_boundary = check_bool(include_boundary, "include_boundary")
        self.num_bins = check_positive_int(num_bins, "num_bins")
        self.register_buffer("basis", orientation_basis(self.num_bins), persistent=False)

    @property
    def descriptor_dim(self) -> int:
        """Channels of the output: ``16 * num_bins * len(cell_sizes)``."""
        return 16 * self.num_bins * len(self.cell_sizes)

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """Spatial size ``(H', W')`` of the output for an ``H x W`` input."""
        return descriptor_size(height, width, self.cell_sizes, self.step_size, self.include_boundary)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        if not torch.jit.is_scripting():
            check_image(image)
        return _sift_flow(image, self.basis, self.cell_sizes, self.step_size, self.include_boundary)

    def extra_repr(self) -> str:
        cell = self.cell_sizes[0] if len(self.cell_sizes) == 1 else self.cell_sizes
        return (
            f"cell_size={cell}, step_size={self.step_size}, "
            f"include_boundary={self.include_boundary}, num_bins={self.num_bins}"
        )


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
        raise TypeError(f"descriptor must be a floating-point torch.Tensor, got {_describe(descriptor)}")
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
        raise ValueError(f"descriptor must be a B x D x H x W tensor, got {_describe(descriptor)}")
    return descriptor.permute(0, 2, 3, 1).contiguous()


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return type(value).__name__
