"""What every command shares: argument types, the descriptor and device options, output checks,
memory estimates and progress. Argument errors are raised here, as ``UsageError``, in one place.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterable
from pathlib import Path

import torch
from PIL import Image

from siftflow_nn.descriptor import SIFTFlowDescriptor


class UsageError(Exception):
    """An argument the command cannot use: one line, exit status 2."""


class CommandFailed(Exception):
    """A command that cannot finish for a reason the user can act on (not a bug): one line, exit 2."""


# --- argument types ------------------------------------------------------------------------------


def positive_int(text: str) -> int:
    value = _number(text, int)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def non_negative_int(text: str) -> int:
    value = _number(text, int)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a non-negative integer, got {text}")
    return value


def non_negative_float(text: str) -> float:
    value = _number(text, float)
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a non-negative finite number, got {text}")
    return value


def _number(text: str, kind: type):
    try:
        return kind(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"must be {'an integer' if kind is int else 'a number'}, got {text!r}"
        ) from None


def cell_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an int or a comma-separated list of ints, got {text!r}") from None
    if min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"must be positive, got {text!r}")
    return sizes


# --- shared options ------------------------------------------------------------------------------


def add_descriptor_options(parser: argparse.ArgumentParser, cell_size: str = "2", sampling: bool = True) -> None:
    """``--cell-size --bins``, and with ``sampling`` also ``--step --no-boundary``."""
    group = parser.add_argument_group("descriptor")
    group.add_argument("--cell-size", type=cell_sizes, default=cell_sizes(cell_size),
                       help=f"cell size, or several comma-separated for multi-scale (default {cell_size})")  # fmt: skip
    if sampling:
        group.add_argument("--step", type=positive_int, default=1, help="sampling step (default 1)")
        group.add_argument("--no-boundary", action="store_true", help="drop the 2 * cell-size border")
    group.add_argument("--bins", type=positive_int, default=8, help="orientation bins (default 8)")


def add_device_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")


def descriptor_from(args: argparse.Namespace) -> SIFTFlowDescriptor:
    step = getattr(args, "step", 1)
    boundary = not getattr(args, "no_boundary", False)
    return SIFTFlowDescriptor(args.cell_size, step, boundary, args.bins)


def device_from(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"argument --device: unknown device {name!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"argument --device: {name!r} asked for, but no CUDA GPU is available")
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"argument --device: {name!r} is not supported here: use cpu, cuda, cuda:N or auto")
    return device


# --- outputs: checked before any work ------------------------------------------------------------

IMAGE_FORMATS = {extension: name for extension, name in Image.registered_extensions().items() if name in Image.SAVE}


def output_path(text: str, formats: Iterable[str], option: str = "-o") -> tuple[Path, str]:
    """Check an output before computing anything; returns it and its format (its extension).

    ``formats``: the extensions the command writes (``"image"`` for any format Pillow writes).
    """
    path = Path(text)
    if path.is_dir():
        raise UsageError(f"argument {option}: {text} is a folder; give a file name")
    extension = path.suffix.lower()
    allowed = set(formats)
    if "image" in allowed and extension in IMAGE_FORMATS:
        kind = "image"
    elif extension in allowed:
        kind = extension
    else:
        names = sorted(allowed - {"image"}) + (["an image format Pillow writes (.png, .jpg, .webp, ...)"]
                                                if "image" in allowed else [])  # fmt: skip
        raise UsageError(
            f"argument {option}: {text}: unsupported extension {extension or '(none)'}; use {', '.join(names)}"
        )
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"argument {option}: {text}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"argument {option}: {text}: the folder {folder} is not writable")
    return path, kind


# --- memory --------------------------------------------------------------------------------------


def available_memory() -> int | None:
    """Bytes the system can still give this process (``MemAvailable``), or None where unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def check_memory(needed: int, what: str, way_out: str, device: torch.device) -> None:
    """Fail before starting when ``what`` needs more memory than is available, saying what to do."""
    available = torch.cuda.mem_get_info(device)[0] if device.type == "cuda" else available_memory()
    if available is not None and needed > available:
        raise CommandFailed(
            f"{what} needs about {needed / 2**30:.1f} GiB of memory and {available / 2**30:.1f} GiB is available; "
            f"{way_out}"
        )
