"""The descriptor's options as one value, checked once, and what follows from them (output size).

``DescriptorOptions`` is a NamedTuple so that TorchScript and the exporters carry it as it is;
``descriptor_options`` builds one from user input and is the only place that validates it.
"""

from collections.abc import Sequence
from typing import NamedTuple

from siftflow_nn._checks import check_bool, check_cell_sizes, check_positive_int


class DescriptorOptions(NamedTuple):
    """Cell sizes (one descriptor block each), sampling step, boundary, orientation bands, and the
    derivative filter (``"sobel"`` or ``"release"``, see ``kernels.gradients``)."""

    cell_sizes: list[int]
    step_size: int
    include_boundary: bool
    num_bins: int
    derivative: str


def cell_offsets() -> list[int]:
    """The original's 4 x 4 cells, per axis, in units of the cell size (a function: TorchScript
    iterates no global constants)."""
    return [-1, 0, 1, 2]


def descriptor_options(
    cell_size: int | Sequence[int] = 2,
    step_size: int = 1,
    include_boundary: bool = True,
    num_bins: int = 8,
    derivative: str = "sobel",
) -> DescriptorOptions:
    """Check the options once (types and ranges, the argument named on failure) and bundle them.

    Example:
        >>> descriptor_options([2, 3], step_size=2)
        DescriptorOptions(cell_sizes=[2, 3], step_size=2, include_boundary=True, num_bins=8, derivative='sobel')
    """
    if derivative not in ("sobel", "release"):
        raise ValueError(f"derivative must be 'sobel' or 'release', got {derivative!r}")
    return DescriptorOptions(
        list(check_cell_sizes(cell_size)),
        check_positive_int(step_size, "step_size"),
        check_bool(include_boundary, "include_boundary"),
        check_positive_int(num_bins, "num_bins"),
        derivative,
    )


def boundary_shift(options: DescriptorOptions) -> int:
    """Image position of the first sample: 0, or ``2 * max(cell_size)`` without the boundary."""
    return 0 if options.include_boundary else 2 * max(options.cell_sizes)


def output_length(length: int, options: DescriptorOptions) -> int:
    """Descriptors along an axis of ``length`` pixels, as the original counts them (may be < 1)."""
    return (length - 2 * boundary_shift(options)) // options.step_size


def minimum_length(options: DescriptorOptions) -> int:
    """The smallest axis length that yields at least one descriptor."""
    return 2 * boundary_shift(options) + options.step_size


def descriptor_dim(options: DescriptorOptions) -> int:
    """Channels of the descriptor: ``16 * num_bins`` per cell size."""
    return 16 * options.num_bins * len(options.cell_sizes)


def describe(options: DescriptorOptions) -> str:
    """The options as keyword arguments, for reprs and messages."""
    cell = str(options.cell_sizes[0]) if len(options.cell_sizes) == 1 else str(options.cell_sizes)
    text = (
        f"cell_size={cell}, step_size={options.step_size}, "
        f"include_boundary={options.include_boundary}, num_bins={options.num_bins}"
    )
    if options.derivative != "sobel":
        text += f", derivative='{options.derivative}'"
    return text
