"""``siftflow-nn extract`` (descriptors to a file) and ``siftflow-nn show`` (descriptors as colours)."""

from __future__ import annotations

import argparse
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from siftflow_nn._progress import Progress
from siftflow_nn.cli._arguments import (
    UsageError,
    add_descriptor_options,
    add_device_option,
    check_memory,
    descriptor_from,
    device_from,
    output_path,
    positive_int,
)
from siftflow_nn.descriptor import sift_flow_descriptor, to_uint8
from siftflow_nn.io import ImageReadError, atomic_path, read_image, write_image

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
_ITEMSIZE = {"float32": 4, "float16": 2, "bfloat16": 2}


def register(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser("extract", allow_abbrev=False, help="write the descriptors of images to a file")
    command.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    command.add_argument(
        "-o", "--output", required=True, help=".npz (an array per image), .pt (a dict of tensors) or .npy (one image)"
    )
    command.add_argument("--uint8", action="store_true", help="store the original's uint8 form")
    command.add_argument(
        "--layout", choices=["hwc", "chw"], default="hwc", help="H' x W' x D as the original (default), or D x H' x W'"
    )
    command.add_argument(
        "--dtype", choices=sorted(DTYPES), default="float32", help="float32, or float16 / bfloat16 under autocast"
    )
    command.add_argument("--batch-size", type=positive_int, default=8, help="images per batch (default 8)")
    add_descriptor_options(command)
    add_device_option(command)
    command.set_defaults(handler=extract)

    command = commands.add_parser(
        "show", allow_abbrev=False, help="a descriptor image as colours (first 3 principal components)"
    )
    command.add_argument("image")
    command.add_argument("-o", "--output", required=True, help="output picture (.png, .jpg, .webp, ...)")
    add_descriptor_options(command)
    add_device_option(command)
    command.set_defaults(handler=show)


def _keys(paths: list[str]) -> list[str]:
    """Array names: the file names, or the paths as given where two files share a name."""
    names = [Path(path).name for path in paths]
    counts = Counter(names)
    return [name if counts[name] == 1 else path for name, path in zip(names, paths)]


def _sizes(paths: list[str], descriptor) -> dict[str, tuple[int, int]]:
    """Every image's (height, width) from its header: a missing, broken or too small file fails
    before any work."""
    sizes = {}
    for path in paths:
        try:
            with Image.open(path) as image:
                width, height = image.size
        except FileNotFoundError:
            raise ImageReadError(f"{path}: no such file") from None
        except IsADirectoryError:
            raise ImageReadError(f"{path}: is a directory, not an image file") from None
        except (OSError, SyntaxError, Image.DecompressionBombError) as error:
            raise ImageReadError(f"{path}: not a readable image ({error})") from None
        if min(descriptor.output_size(height, width)) < 1:
            raise ImageReadError(f"{path}: {height} x {width} is too small for {descriptor.extra_repr()}")
        sizes[path] = (height, width)  # EXIF rotation swaps them, but not the pixel count
    return sizes


def extract(args: argparse.Namespace) -> None:
    output, kind = output_path(args.output, [".npz", ".pt", ".npy"])
    if kind == ".npy" and len(args.images) != 1:
        raise UsageError(
            f"argument -o: a .npy file holds one array; give one image or use .npz / .pt for {len(args.images)}"
        )
    device = device_from(args.device)
    descriptor = descriptor_from(args).to(device)
    sizes = _sizes(args.images, descriptor)
    _check_extract_memory(sizes, descriptor.descriptor_dim, args, device)

    groups: dict[tuple[int, int], list[str]] = defaultdict(list)
    for path in args.images:
        groups[sizes[path]].append(path)
    keys = dict(zip(args.images, _keys(args.images)))
    results: dict[str, torch.Tensor] = {}
    progress = Progress(len(args.images), "extract", "image")
    with torch.no_grad(), torch.autocast(device.type, DTYPES[args.dtype], enabled=args.dtype != "float32"):
        for paths in groups.values():
            for start in range(0, len(paths), args.batch_size):
                chunk = paths[start : start + args.batch_size]
                batch = torch.stack([read_image(path) for path in chunk]).to(device)
                for path, item in zip(chunk, _descriptors(batch, descriptor, args)):
                    results[keys[path]] = item
                progress.update(len(chunk))
    progress.close()
    with atomic_path(output) as temporary:
        if kind == ".pt":
            torch.save(results, temporary)
        elif kind == ".npy":
            np.save(temporary, _to_numpy(next(iter(results.values()))))
        else:
            with open(temporary, "wb") as handle:
                np.savez(handle, **{key: _to_numpy(value) for key, value in results.items()})
    print(f"wrote {len(results)} descriptors to {output}")


def _check_extract_memory(sizes: dict, dim: int, args: argparse.Namespace, device: torch.device) -> None:
    """The stored descriptors of every image, and one batch of float ones, must fit."""
    per_pixel = dim / args.step**2
    stored = 1 if args.uint8 else _ITEMSIZE[args.dtype]
    largest = max(height * width for height, width in sizes.values())
    outputs = stored * sum(height * width for height, width in sizes.values())
    needed = int(per_pixel * (outputs + 4 * largest * min(args.batch_size, len(sizes))))
    check_memory(needed, "extracting these descriptors", "use a larger --step (4x less memory each doubling), "
                 "--uint8, a smaller --batch-size, or fewer images per call", device)  # fmt: skip


def _descriptors(batch: torch.Tensor, descriptor, args: argparse.Namespace) -> list[torch.Tensor]:
    """One batch's descriptors in the stored form and layout, on the CPU.

    Float H' x W' x D descriptors are written straight into that layout (``out=`` with its strides),
    so that no second copy of a large output ever exists.
    """
    if args.uint8 or args.layout == "chw":
        out = descriptor(batch)
        out = to_uint8(out) if args.uint8 else out
        if args.layout == "hwc":
            out = out.permute(0, 2, 3, 1)
        return [item.contiguous().cpu() for item in out]
    height, width = descriptor.output_size(*batch.shape[-2:])
    dtype = DTYPES[args.dtype] if args.dtype != "float32" else batch.dtype
    hwc = torch.empty(batch.shape[0], height, width, descriptor.descriptor_dim, dtype=dtype, device=batch.device)
    sift_flow_descriptor(batch, descriptor.cell_sizes, descriptor.step_size, descriptor.include_boundary,
                         descriptor.num_bins, out=hwc.permute(0, 3, 1, 2))  # fmt: skip
    return list(hwc.cpu())


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


def show(args: argparse.Namespace) -> None:
    from siftflow_nn.viz import descriptor_to_color

    output, _ = output_path(args.output, ["image"])
    device = device_from(args.device)
    descriptor = descriptor_from(args).to(device)
    height, width = _sizes([args.image], descriptor)[args.image]
    out_h, out_w = descriptor.output_size(height, width)
    check_memory(int(out_h * out_w * descriptor.descriptor_dim * 4 * 1.2), "this descriptor image",
                 "use a larger --step (4x less memory each doubling)", device)  # fmt: skip
    image = read_image(args.image)
    progress = Progress(2, "show", "stage")
    with torch.no_grad():
        values = descriptor(image[None].to(device))[0]
    progress.update(1, "descriptor")
    colours = descriptor_to_color(values)
    progress.update(1, "principal components")
    progress.close()
    write_image(output, colours)
    print(f"wrote {output}")
