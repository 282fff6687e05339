"""The descriptor's three execution paths, and ``compute``, the one place that picks among them.

- **graph**: plain differentiable tensor ops and one concatenation at the end. TorchScript runs it,
  and so do ``torch.compile``, ``torch.export``, ONNX export and ``jit.trace`` (they record it).
- **eager, with autograd**: the same stages, with the 4 x 4 gathering as one ``autograd.Function``
  (``sampling.ScaledGather``) whose backward keeps no output-sized state.
- **eager, without autograd**: a strip of output rows at a time (``row_strips.py``), on the CPU
  one image at a time: the small intermediates stay in cache and the output, written once, is the
  only fresh memory.

All three give the same numbers (the strips to 1 ulp: torch sums a norm's squares in another
order); the tests hold every reference case to each.
"""

import torch
import torch.nn.functional as F

from siftflow_nn.descriptor.kernels import at_least_float32, dominant_gradient, gradients, orientation_bands
from siftflow_nn.descriptor.options import (
    DescriptorOptions,
    describe,
    descriptor_dim,
    minimum_length,
    output_length,
)
from siftflow_nn.descriptor.row_strips import strip_height, write_strip
from siftflow_nn.descriptor.sampling import (
    AxisPlan,
    ScaledGather,
    ScaleSamples,
    filter_margins,
    flatten_scales,
    gather_with_cat,
    plan_axes,
    sample_scale,
    write_descriptors,
)
from siftflow_nn.descriptor.stored import write_stored, writes_stored

STORED_STRIP_BYTES = 8 << 20  # the float strip behind a uint8 ``out``


def output_dtype(image: torch.Tensor) -> torch.dtype:
    """Under autocast a float32 image gives a descriptor in the autocast dtype; otherwise its own."""
    if not torch.jit.is_scripting():
        device_type = image.device.type
        if image.dtype == torch.float32 and torch.is_autocast_enabled(device_type):
            return torch.get_autocast_dtype(device_type)
    return image.dtype


def compute(
    image: torch.Tensor, basis: torch.Tensor, options: DescriptorOptions, out: torch.Tensor | None = None
) -> torch.Tensor:
    """The descriptor of ``image`` (``(B, C, H, W)``) for ``options``, by the path that fits the call."""
    height, width = image.shape[-2], image.shape[-1]
    out_h, out_w = output_length(height, options), output_length(width, options)
    if out_h < 1 or out_w < 1:
        raise ValueError(
            f"image of size {height} x {width} is too small for {describe(options)}: height and width must be "
            f"at least {minimum_length(options)}"
        )
    out_dtype = output_dtype(image)
    plans = plan_axes(options, out_h, out_w)
    if not torch.jit.is_scripting():
        if out is not None:
            _check_out(out, [image.shape[0], descriptor_dim(options), out_h, out_w], out_dtype, image)
        if not _in_graph_capture():
            return _eager(image, basis, options, plans, out_dtype, out)
    result = gather_with_cat(_sample_scales(image, basis, options, plans, out_h, out_w), out_h, out_w, out_dtype)
    if out is None:
        return result
    return out.copy_(stored_scale(result) if out.dtype == torch.uint8 else result)


def stored_scale(descriptor: torch.Tensor, in_place: bool = False) -> torch.Tensor:
    """``min(255 v, 255)`` clamped at 0, in float32 at least (float64 stays), as the original
    multiplies before storing a uint8: copying it into a uint8 tensor truncates, as the cast does.
    ``in_place``: ``descriptor`` may be overwritten (a float32 or float64 one is)."""
    work = descriptor.detach()
    if work.dtype not in (torch.float32, torch.float64):
        work, in_place = work.float(), True  # a fresh copy
    return (work.mul_(255) if in_place else work * 255).clamp_(0, 255)


def _in_graph_capture() -> bool:
    """True while torch.compile, torch.export, ONNX export or jit.trace records the computation."""
    return torch.compiler.is_compiling() or torch.onnx.is_in_onnx_export() or torch.jit.is_tracing()


def _sample_scales(
    image: torch.Tensor,
    basis: torch.Tensor,
    options: DescriptorOptions,
    plans: list[tuple[AxisPlan, AxisPlan]],
    out_h: int,
    out_w: int,
) -> list[ScaleSamples]:
    """Image -> gradients -> bands -> per cell size, the sampled cell maps and descriptor norms."""
    work = at_least_float32(image)
    gx, gy = dominant_gradient(*gradients(work, options.derivative))
    # Pad the two one-channel gradient maps rather than the num_bins-channel band maps: the bands
    # are pointwise in the gradient, so they come out replicate-padded for the cell filter.
    height, width = image.shape[-2], image.shape[-1]
    low, high = filter_margins(options)
    padded = F.pad(torch.cat([gx, gy], dim=1), [low, high, low, high], mode="replicate")
    bands = orientation_bands(padded[:, :1], padded[:, 1:], basis.to(work.dtype))
    return [
        sample_scale(bands, (low, low), (height, width), cs, rows, cols, out_h, out_w)
        for cs, (rows, cols) in zip(options.cell_sizes, plans)
    ]


@torch.jit.unused
def _eager(
    image: torch.Tensor,
    basis: torch.Tensor,
    options: DescriptorOptions,
    plans: list[tuple[AxisPlan, AxisPlan]],
    out_dtype: torch.dtype,
    out: torch.Tensor | None,
) -> torch.Tensor:
    """Eager mode: each descriptor element written once, straight into the result (or ``out``;
    a uint8 ``out`` gets ``to_uint8`` of each strip, computed in a recycled buffer)."""
    out_h, out_w = output_length(image.shape[-2], options), output_length(image.shape[-1], options)
    shape = (image.shape[0], descriptor_dim(options), out_h, out_w)
    if torch.is_grad_enabled() and image.requires_grad:
        layout, tensors = flatten_scales(_sample_scales(image, basis, options, plans, out_h, out_w))
        return ScaledGather.apply(layout, out_dtype, shape, *tensors)
    if out is None:
        out = torch.empty(shape, dtype=out_dtype, device=image.device)
    # On the CPU, one image and one strip of rows at a time: fresh buffers of many MiB cost a page
    # fault per 4 KiB, while a strip's intermediates are recycled and cached. A GPU gets the whole
    # batch at once: there, fewer and larger kernels win.
    work = at_least_float32(image)
    basis = basis.to(work.dtype)
    margins = filter_margins(options)
    col_plans = [cols for _, cols in plans]
    on_cpu = image.device.type == "cpu"
    chunk = 1 if on_cpu else image.shape[0]
    band_width = image.shape[-1] + margins[0] + margins[1]
    strip = out_h
    # uint8: written straight from the cell maps (stored.py), or else through a float buffer
    direct = writes_stored(out, work.dtype)
    stored = out.dtype == torch.uint8 and not direct
    if on_cpu:
        strip = strip_height(out_h, band_width, options.num_bins, options.step_size, work.element_size())
        if stored:  # that buffer is recycled too (8 MiB: on the 2-core CPU 1.5x faster than 4, as fast as 16)
            strip = min(strip, max(1, STORED_STRIP_BYTES // (shape[1] * out_w * work.element_size())))
    buffer = torch.empty((chunk, shape[1], strip, out_w), dtype=out_dtype, device=image.device) if stored else None
    with torch.no_grad():
        for start in range(0, image.shape[0], chunk):
            for first_row in range(0, out_h, strip):
                target = out[start : start + chunk, :, first_row : first_row + strip]
                if buffer is not None:
                    floats = buffer[: target.shape[0], :, : target.shape[2]]
                    write_strip(floats, work[start : start + chunk], basis, options, col_plans, margins, first_row)
                    # to uint8 in the float layout, then rearranged (cheaper for 1-byte values)
                    target.copy_(stored_scale(floats, in_place=True).to(torch.uint8))
                else:
                    writer = write_stored if direct else write_descriptors
                    write_strip(
                        target, work[start : start + chunk], basis, options, col_plans, margins, first_row, writer
                    )
    return out


def _check_out(out: torch.Tensor, shape: list[int], dtype: torch.dtype, image: torch.Tensor) -> None:
    if not isinstance(out, torch.Tensor):
        raise TypeError(f"out must be a torch.Tensor or None, got {type(out).__name__}")
    if list(out.shape) != shape or out.dtype not in (dtype, torch.uint8) or out.device != image.device:
        raise ValueError(
            f"out must be a {dtype} (or uint8) tensor of shape {tuple(shape)} on {image.device}, "
            f"got a {out.dtype} tensor of shape {tuple(out.shape)} on {out.device}"
        )
    if torch.is_grad_enabled() and image.requires_grad:
        raise ValueError("out= does not support autograd: image requires grad; call without out, or under no_grad")
