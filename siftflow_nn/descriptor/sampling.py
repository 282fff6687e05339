"""Cell maps at the sampled positions only, and the normalised 4 x 4 descriptor built from them.

The 16 cells of the descriptor at output pixel (i, j) are the cell map read at
``clamp(shift + i * step + r * cs)``, ``clamp(shift + j * step + c * cs)`` for r, c in -1..2.

Along one axis, offset ``r`` reads positions ``shift + r * cs + k * step``: an arithmetic progression
whose residue modulo ``step`` is its *phase*. Offsets that share a phase read one progression, so per
phase we compute the cell filter only at that progression's positions (clamped ones become copies of
the image-edge value) into a *compact map*. Every cell of every descriptor is then a contiguous slice
of one compact map: no ``grid_sample``, no ``unfold``, no index lists. With step 1 there is a single
phase and the compact map is the cell map with replicated margins; with step 2 and an even cell size,
a quarter of it.

The squared norm of a descriptor is the sum over its 16 cells of ``sum_k cell_k ** 2``, so it comes
from the one-channel maps of per-position squared norms, before the descriptors exist; each output
element is then written exactly once, as ``cell * inv_norm``.
"""

from typing import NamedTuple

import torch

from siftflow_nn.descriptor.kernels import cell_filter_at, smallest_normal
from siftflow_nn.descriptor.options import DescriptorOptions, boundary_shift, cell_offsets


class AxisPlan(NamedTuple):
    """How one axis is sampled for one cell size."""

    phase_first: list[int]  # per phase: first (unclamped) position of its progression
    phase_count: list[int]  # per phase: number of positions
    offset_phase: list[int]  # per cell offset -1..2: the phase it reads
    offset_start: list[int]  # per cell offset: index of its first sample in that phase
    step: int


def plan_axis(count: int, cell_size: int, step: int, shift: int) -> AxisPlan:
    """Group the 4 cell offsets of an axis with ``count`` descriptors into phases.

    Only ``count`` depends on the image size, and it enters linearly: exporters with symbolic
    shapes see no min / max of it.
    """
    residues: list[int] = []
    phase_first: list[int] = []
    phase_first_max: list[int] = []
    offset_phase: list[int] = []
    for offset in cell_offsets():
        first = shift + offset * cell_size
        residue = ((first % step) + step) % step
        if residue in residues:
            phase = residues.index(residue)
            phase_first[phase] = min(phase_first[phase], first)
            phase_first_max[phase] = max(phase_first_max[phase], first)
        else:
            phase = len(residues)
            residues.append(residue)
            phase_first.append(first)
            phase_first_max.append(first)
        offset_phase.append(phase)
    phase_count = [(high - low) // step + count for low, high in zip(phase_first, phase_first_max)]
    offset_start: list[int] = []
    for index, offset in enumerate(cell_offsets()):
        offset_start.append((shift + offset * cell_size - phase_first[offset_phase[index]]) // step)
    return AxisPlan(phase_first, phase_count, offset_phase, offset_start, step)


def plan_axes(options: DescriptorOptions, out_h: int, out_w: int) -> list[tuple[AxisPlan, AxisPlan]]:
    """Per cell size, the (rows, columns) plans of an ``out_h x out_w`` descriptor grid."""
    shift = boundary_shift(options)
    step = options.step_size
    return [(plan_axis(out_h, cs, step, shift), plan_axis(out_w, cs, step, shift)) for cs in options.cell_sizes]


def filter_margins(options: DescriptorOptions) -> tuple[int, int]:
    """Padding ``(low, high)`` an axis of the band maps needs so that every filter tap is inside.

    That covers the cell filter's reach (``cs`` before, 1 after) around every sampled position,
    including the positions beyond the image that :func:`compact_cell_maps` overwrites afterwards.
    The bounds do not depend on the image size: the last sample of offset ``+2`` overshoots the
    image by at most ``2 cs + 1 - step`` with the boundary, and never without it.
    """
    low, high = 0, 1
    for cell_size in options.cell_sizes:
        low = max(low, 2 * cell_size if options.include_boundary else cell_size)
        if options.include_boundary:
            high = max(high, 1 + max(0, 2 * cell_size + 1 - options.step_size))
    return low, high


def _clamped_filter(
    values: torch.Tensor, dim: int, cell_size: int, origin: int, length: int, first: int, count: int, step: int
) -> torch.Tensor:
    """The cell filter along ``dim`` at ``clamp(first + k * step, 0, length - 1)``, k < count.

    ``values`` holds image position p at index ``p + origin``, with replicated margins. The original
    clamps the *cell map*, not the bands, so positions beyond the image are computed (cheaply) and
    then replaced by the filtered value at the image edge.
    """
    out = cell_filter_at(values, dim, cell_size, origin + first, count, step)
    if torch.jit.is_scripting() or not torch.compiler.is_compiling():
        # Eager and TorchScript: overwrite the few clamped slots, counted from concrete sizes. An
        # edge is filtered only when needed: a row strip (``_row_strips.py``) need not hold it.
        below = min(count, max(0, (step - 1 - first) // step))  # positions < 0
        last = first + (count - 1) * step
        above = min(count - below, max(0, (last - length + step) // step))  # positions > length - 1
        if below > 0:
            low_edge = cell_filter_at(values, dim, cell_size, origin, 1, 1)
            out.narrow(dim, 0, below).copy_(low_edge.expand(_sized(low_edge.shape, dim, below)))
        if above > 0:
            high_edge = cell_filter_at(values, dim, cell_size, origin + length - 1, 1, 1)
            out.narrow(dim, count - above, above).copy_(high_edge.expand(_sized(high_edge.shape, dim, above)))
        return out
    # torch.compile / torch.export see symbolic sizes: select by position instead of counting.
    low_edge = cell_filter_at(values, dim, cell_size, origin, 1, 1)
    high_edge = cell_filter_at(values, dim, cell_size, origin + length - 1, 1, 1)
    positions = torch.arange(count, device=out.device) * step + first
    positions = positions.view(-1, 1) if dim == -2 else positions
    return torch.where(positions < 0, low_edge, torch.where(positions > length - 1, high_edge, out))


def _sized(shape: list[int], dim: int, size: int) -> list[int]:
    sizes = list(shape)
    sizes[dim] = size
    return sizes


def compact_cell_maps(
    bands: torch.Tensor, origin: tuple[int, int], size: tuple[int, int], cell_size: int, rows: AxisPlan, cols: AxisPlan
) -> list[torch.Tensor]:
    """Cell maps at the sampled positions: one ``(B, N, rows, cols)`` map per (row phase, col phase).

    ``bands`` holds image pixel (y, x) at ``(y + origin[0], x + origin[1])``, with margins from
    :func:`filter_margins`; ``size`` is the image's ``(H, W)``. Maps are listed row phase major:
    map ``r * len(cols.phase_count) + c``.
    """
    # Rows first: a strided read along rows keeps the inner loop contiguous, so the step-strided
    # (slow) reads along x then touch only the rows kept (with step 2: 0.65 vs 0.89 ms a strip).
    maps: list[torch.Tensor] = []
    for row_first, row_count in zip(rows.phase_first, rows.phase_count):
        vertical = _clamped_filter(bands, -2, cell_size, origin[0], size[0], row_first, row_count, rows.step)
        for first, count in zip(cols.phase_first, cols.phase_count):
            maps.append(_clamped_filter(vertical, -1, cell_size, origin[1], size[1], first, count, cols.step))
    return maps


def cell_sources(rows: AxisPlan, cols: AxisPlan) -> list[tuple[int, int, int]]:
    """Per cell of the 4 x 4, in the original's cell order: ``(map, first row, first column)``,
    where in the compact maps (listed as :func:`compact_cell_maps` does) its samples start."""
    sources: list[tuple[int, int, int]] = []  # loops, not a comprehension: TorchScript compiles this
    for row_phase, row_start in zip(rows.offset_phase, rows.offset_start):
        for col_phase, col_start in zip(cols.offset_phase, cols.offset_start):
            sources.append((row_phase * len(cols.phase_count) + col_phase, row_start, col_start))
    return sources


def cell_views(maps: list[torch.Tensor], rows: AxisPlan, cols: AxisPlan, out_h: int, out_w: int) -> list[torch.Tensor]:
    """The 16 ``(B, N, out_h, out_w)`` views of compact maps, in the original's cell order."""
    views: list[torch.Tensor] = []
    for index, top, left in cell_sources(rows, cols):
        views.append(maps[index][:, :, top : top + out_h, left : left + out_w])
    return views


def inverse_norm(maps: list[torch.Tensor], rows: AxisPlan, cols: AxisPlan, out_h: int, out_w: int) -> torch.Tensor:
    """``1 / (||descriptor|| + 0.01)`` for every output pixel, shape ``(B, 1, out_h, out_w)``.

    The maps are float32 or float64 (half-precision images are filtered in float32), so the sum of
    128 squares cannot overflow. The square root is guarded at 0 (constant images) so that its
    gradient stays finite; a NaN stays NaN.
    """
    squares = [(cells * cells).sum(dim=1, keepdim=True) for cells in maps]
    # The sum over the 4 x 4 cells is separable: per row phase, sum the 4 column offsets over all
    # of its rows, then the 4 row offsets of those sums (6 adds, not 15, with one phase per axis).
    col_phases = len(cols.phase_count)
    by_row_phase: list[torch.Tensor] = []
    for row_phase in range(len(rows.phase_count)):
        pieces = [
            squares[row_phase * col_phases + col_phase][..., start : start + out_w]
            for col_phase, start in zip(cols.offset_phase, cols.offset_start)
        ]
        by_row_phase.append(_sum(pieces))
    total = _sum(
        [
            by_row_phase[row_phase][:, :, start : start + out_h]
            for row_phase, start in zip(rows.offset_phase, rows.offset_start)
        ]
    )
    # Clamped to the smallest normal number, whose root is far below 0.01's rounding: the result is
    # exact, the gradient at 0 is 0, and no bool mask (slow on the CPU) is needed.
    norm = total.clamp_min_(smallest_normal(total.dtype)).sqrt_()
    return 1.0 / (norm + 0.01)


def _sum(pieces: list[torch.Tensor]) -> torch.Tensor:
    total = pieces[0] + pieces[1]
    for piece in pieces[2:]:
        total.add_(piece)  # in place: saves nothing for autograd, allocates nothing
    return total


class ScaleSamples(NamedTuple):
    """Everything one cell size contributes: its compact maps, plans and inverse norms."""

    maps: list[torch.Tensor]
    rows: AxisPlan
    cols: AxisPlan
    inv_norm: torch.Tensor


def sample_scale(
    bands: torch.Tensor,
    origin: tuple[int, int],
    size: tuple[int, int],
    cell_size: int,
    rows: AxisPlan,
    cols: AxisPlan,
    out_h: int,
    out_w: int,
) -> ScaleSamples:
    """Compact cell maps and inverse descriptor norms of one cell size (arguments as in compact_cell_maps)."""
    maps = compact_cell_maps(bands, origin, size, cell_size, rows, cols)
    return ScaleSamples(maps, rows, cols, inverse_norm(maps, rows, cols, out_h, out_w))


def gather_with_cat(scales: list[ScaleSamples], out_h: int, out_w: int, out_dtype: torch.dtype) -> torch.Tensor:
    """The descriptor from plain, differentiable ops, for TorchScript, compilers and exporters.

    They see one concatenation of products, which inductor fuses into a single output write; eager
    mode uses :func:`write_descriptors` instead, which avoids torch.cat's second output-sized copy.
    """
    pieces: list[torch.Tensor] = []
    for scale in scales:
        for view in cell_views(scale.maps, scale.rows, scale.cols, out_h, out_w):
            pieces.append((view * scale.inv_norm).to(out_dtype))
    return torch.cat(pieces, dim=1)


@torch.jit.unused
def write_descriptors(out: torch.Tensor, scales: list[ScaleSamples]) -> torch.Tensor:
    """Write ``cell * inv_norm`` for every cell of every scale into ``out``, each element once."""
    channel = 0
    for scale in scales:
        for view in cell_views(scale.maps, scale.rows, scale.cols, out.shape[2], out.shape[3]):
            bins = view.shape[1]
            torch.mul(view, scale.inv_norm, out=out[:, channel : channel + bins])
            channel += bins
    return out


class ScaledGather(torch.autograd.Function):
    """:func:`write_descriptors` with a backward that keeps no output-sized state.

    ``tensors`` holds, per scale, its compact maps then its inverse norm; ``layout`` says how many
    maps each scale has and its plans.
    """

    @staticmethod
    def forward(ctx, layout, out_dtype, out_shape, *tensors):  # type: ignore[override]
        ctx.layout = layout
        ctx.save_for_backward(*tensors)
        out = torch.empty(out_shape, dtype=out_dtype, device=tensors[0].device)
        return write_descriptors(out, _unflatten(layout, tensors))

    @staticmethod
    def backward(ctx, grad_out):  # type: ignore[override]
        scales = _unflatten(ctx.layout, ctx.saved_tensors)
        if torch.is_grad_enabled():  # create_graph=True: a second derivative will be taken
            return (None, None, None, *_gather_backward_differentiable(scales, grad_out))
        out_h, out_w = grad_out.shape[2:]
        grads: list[torch.Tensor | None] = [None, None, None]
        channel = 0
        for scale in scales:
            grad_maps = [torch.zeros_like(cells) for cells in scale.maps]
            grad_inv = torch.zeros_like(scale.inv_norm)
            views = cell_views(scale.maps, scale.rows, scale.cols, out_h, out_w)
            grad_views = cell_views(grad_maps, scale.rows, scale.cols, out_h, out_w)
            for view, grad_view in zip(views, grad_views):
                bins = view.shape[1]
                grad = grad_out[:, channel : channel + bins].to(view.dtype)
                grad_view.add_(grad * scale.inv_norm)
                grad_inv.add_((grad * view).sum(dim=1, keepdim=True))
                channel += bins
            grads += grad_maps + [grad_inv]
        return tuple(grads)


def _gather_backward_differentiable(scales: list[ScaleSamples], grad_out: torch.Tensor) -> list[torch.Tensor]:
    """``ScaledGather``'s backward out of place, so that autograd can differentiate it again.

    Each view's gradient is zero-padded back to its map's size and summed: more memory than the
    in-place version, which only runs when no second derivative is wanted.
    """
    out_h, out_w = grad_out.shape[2:]
    grads: list[torch.Tensor] = []
    channel = 0
    for scale in scales:
        grad_maps: list[torch.Tensor | None] = [None] * len(scale.maps)
        grad_inv = torch.zeros_like(scale.inv_norm)
        for row_phase, row_start in zip(scale.rows.offset_phase, scale.rows.offset_start):
            for col_phase, col_start in zip(scale.cols.offset_phase, scale.cols.offset_start):
                index = row_phase * len(scale.cols.phase_count) + col_phase
                cells = scale.maps[index]
                view = cells[:, :, row_start : row_start + out_h, col_start : col_start + out_w]
                grad = grad_out[:, channel : channel + view.shape[1]].to(view.dtype)
                height, width = cells.shape[2:]
                padding = [col_start, width - col_start - out_w, row_start, height - row_start - out_h]
                placed = torch.nn.functional.pad(grad * scale.inv_norm, padding)
                grad_maps[index] = placed if grad_maps[index] is None else grad_maps[index] + placed
                grad_inv = grad_inv + (grad * view).sum(dim=1, keepdim=True)
                channel += view.shape[1]
        grads += [g if g is not None else torch.zeros_like(m) for g, m in zip(grad_maps, scale.maps)] + [grad_inv]
    return grads


def flatten_scales(scales: list[ScaleSamples]) -> tuple[list[tuple[int, AxisPlan, AxisPlan]], list[torch.Tensor]]:
    """Split scales into a tensor-free layout and a flat tensor list, as autograd.Function wants."""
    layout = [(len(scale.maps), scale.rows, scale.cols) for scale in scales]
    tensors = [tensor for scale in scales for tensor in [*scale.maps, scale.inv_norm]]
    return layout, tensors


def _unflatten(layout: list[tuple[int, AxisPlan, AxisPlan]], tensors) -> list[ScaleSamples]:
    scales: list[ScaleSamples] = []
    position = 0
    for count, rows, cols in layout:
        maps = list(tensors[position : position + count])
        scales.append(ScaleSamples(maps, rows, cols, tensors[position + count]))
        position += count + 1
    return scales
