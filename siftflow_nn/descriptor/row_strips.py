"""The eager, autograd-free descriptor, computed one strip of output rows at a time.

Why: on the CPU every fresh MiB costs page faults (about as much time as writing it), and the
full-resolution stages (Sobel, dominant channel, ``num_bins`` band maps) would otherwise make
several image-sized intermediates per call. A strip's intermediates are small: malloc recycles
them from one strip to the next and they stay in cache, so the output is the only fresh memory.

A strip reads exactly the image rows its outputs depend on (cell offsets -1..2, the cell filter's
taps, the derivative's reach), with the image's replicated border wherever that reaches past the image.
Every stage is row-local, so the result equals the whole-image computation up to the order in
which torch sums a descriptor's squares (1 ulp; tests/test_gradients.py holds it to that).
"""

import torch
import torch.nn.functional as F

from siftflow_nn.descriptor.kernels import derivative_radius, dominant_gradient, gradients_valid, orientation_bands
from siftflow_nn.descriptor.options import DescriptorOptions, boundary_shift
from siftflow_nn.descriptor.sampling import AxisPlan, plan_axis, sample_scale, write_descriptors

# Band-map bytes per strip. Each strip costs about 100 op dispatches, so strips must not be tiny:
# on the 2-core CPU, at step 2, 4 MiB beat 2 and 8 MiB by about 10% and 256 KiB by 3x.
STRIP_BYTES = 1 << 22


def band_rows(shift: int, first_row: int, count: int, step: int, largest: int) -> tuple[int, int]:
    """Image rows ``[lo, hi)`` of the band maps that output rows ``first_row .. first_row + count - 1`` read.

    Output row ``i`` samples positions ``shift + i * step + r * cs`` for cell offsets r in -1..2, and
    the cell filter reaches ``cs`` rows before a position and 1 after. Rows outside the image
    (``lo < 0`` or ``hi > H``) are replicated edge rows.
    """
    lo = shift + first_row * step - 2 * largest
    hi = shift + (first_row + count - 1) * step + 2 * largest + 2
    return lo, hi


def strip_height(out_h: int, band_width: int, num_bins: int, step: int, itemsize: int) -> int:
    """Output rows per strip: as many as keep one strip's band maps near ``STRIP_BYTES``."""
    band_row_bytes = band_width * num_bins * itemsize
    return max(1, min(out_h, STRIP_BYTES // (band_row_bytes * step)))


def write_strip(
    out: torch.Tensor,
    image: torch.Tensor,
    basis: torch.Tensor,
    options: DescriptorOptions,
    col_plans: list[AxisPlan],
    col_margins: tuple[int, int],
    first_row: int,
    write=write_descriptors,
) -> None:
    """Write output rows ``first_row .. first_row + out.shape[2] - 1`` of the descriptor into ``out``.

    Args:
        out: ``(B, D, count, W')`` slice of the result to fill.
        image: ``(B, C, H, W)`` float32 / float64 image (the whole image, not the strip).
        basis: ``(2, num_bins)`` orientation basis in the image's dtype.
        options: the descriptor's options.
        col_plans: per cell size, the column plan of the whole output width.
        col_margins: ``(low, high)`` columns of replicated border the column plans need.
        first_row: output row that ``out``'s first row holds.
        write: ``write(out, scales)`` writes the descriptors from the strip's ``ScaleSamples``
            (``sampling.write_descriptors``, or ``stored.write_stored`` for uint8).
    """
    height, width = image.shape[-2], image.shape[-1]
    count, step, shift = out.shape[2], options.step_size, boundary_shift(options)
    lo, hi = band_rows(shift, first_row, count, step, max(options.cell_sizes))
    top, bottom = max(lo, 0), min(hi, height)  # the image rows whose gradients the strip needs
    # The derivative reaches r more rows each side; past the image edge, F.pad replicates them.
    r = derivative_radius(options.derivative)
    first, last = max(top - r, 0), min(bottom + r, height)
    window = F.pad(image[:, :, first:last], [r, r, first - (top - r), (bottom + r) - last], mode="replicate")
    gx, gy = dominant_gradient(*gradients_valid(window, options.derivative))
    low, high = col_margins
    gradients = F.pad(torch.cat([gx, gy], dim=1), [low, high, top - lo, hi - bottom], mode="replicate")
    bands = orientation_bands(gradients[:, :1], gradients[:, 1:], basis, inplace=True)
    scales = [
        sample_scale(
            bands,
            (-lo, low),
            (height, width),
            cs,
            plan_axis(count, cs, step, shift + first_row * step),
            cols,
            count,
            out.shape[3],
        )
        for cs, cols in zip(options.cell_sizes, col_plans)
    ]
    write(out, scales)
