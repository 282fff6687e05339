"""``siftflow-nn flow``: dense flow between two images, as a picture, a ``.flo`` file or an array."""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from siftflow_nn._progress import Progress
from siftflow_nn.cli._arguments import (
    UsageError,
    add_descriptor_options,
    add_device_option,
    check_memory,
    device_from,
    output_path,
    positive_int,
)
from siftflow_nn.io import atomic_path, read_image, write_image

_FORMATS = ["image", ".flo", ".npy", ".npz", ".pt"]
_GRAY = torch.tensor([0.299, 0.587, 0.114])  # ITU-R 601 luma, as Pillow's "L" conversion


def register(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser("flow", allow_abbrev=False, help="dense flow between two images")
    command.add_argument("image1")
    command.add_argument("image2")
    command.add_argument(
        "-o", "--output", required=True, help="a colour picture (.png, .jpg, .webp, ...), .flo, .npy, .npz or .pt"
    )
    command.add_argument("--flo", help="also write the flow in the Middlebury .flo format")
    command.add_argument("--method", choices=["sift-flow", "local"], default="sift-flow",
                         help="SIFT flow (belief propagation, default) or exhaustive local matching")  # fmt: skip
    command.add_argument("--radius", type=positive_int, help="search radius of --method local (default 4)")
    command.add_argument("--fast", action="store_true", help="--method sift-flow with a third of the iterations")
    add_descriptor_options(command, cell_size="3", sampling=False)  # flow needs every pixel's descriptor
    add_device_option(command)
    command.set_defaults(handler=flow)


def flow(args: argparse.Namespace) -> None:
    if args.fast and args.method != "sift-flow":
        raise UsageError("argument --fast: applies to --method sift-flow only")
    if args.radius is not None and args.method != "local":
        raise UsageError("argument --radius: applies to --method local only (SIFT flow searches its own windows)")
    output, kind = output_path(args.output, _FORMATS)
    flo = output_path(args.flo, [".flo"], "--flo")[0] if args.flo else None
    device = device_from(args.device)
    image1, image2 = read_image(args.image1), read_image(args.image2)
    if image1.shape[1:] != image2.shape[1:]:
        raise UsageError(
            f"{args.image1} and {args.image2} differ in size: {tuple(image1.shape[1:])} and {tuple(image2.shape[1:])}"
        )
    if image1.shape[0] != image2.shape[0]:
        print(f"siftflow-nn: note: {args.image1} has {image1.shape[0]} channel(s) and {args.image2} "
              f"{image2.shape[0]}: matching both in grayscale", file=sys.stderr)  # fmt: skip
        image1, image2 = _gray(image1), _gray(image2)
    start = time.perf_counter()
    with torch.no_grad():
        estimate = _estimate(image1, image2, args, device)
    elapsed = time.perf_counter() - start
    _write(output, kind, estimate)
    if flo is not None:
        _write(flo, ".flo", estimate)
    print(f"{args.method} flow in {elapsed:.2f} s; wrote {output}" + (f" and {flo}" if flo else ""))


def _gray(image: torch.Tensor) -> torch.Tensor:
    return image if image.shape[0] == 1 else (image * _GRAY.view(3, 1, 1)).sum(0, keepdim=True)


def _estimate(image1: torch.Tensor, image2: torch.Tensor, args: argparse.Namespace, device: torch.device):
    """``(2, H, W)`` flow from ``image1`` to ``image2`` with the chosen method, with progress."""
    from siftflow_nn.flow.sift_flow import SIFTFlow

    pixels = image1.shape[1] * image1.shape[2]
    dim = 16 * args.bins * len(args.cell_size)
    pair = torch.stack([image1, image2]).to(device)
    if args.method == "sift-flow":
        matcher = SIFTFlow(cell_size=args.cell_size, num_bins=args.bins, fast=args.fast).to(device)
        if min(pair.shape[-2:]) < matcher.minimum_size():
            raise UsageError(f"images of {tuple(pair.shape[-2:])} are too small for SIFT flow: use --method local")
        # The float descriptor of one image, the two uint8 ones, and the finest level's messages and data term.
        labels = 2 * matcher.window + 1
        needed = pixels * (4 * dim + 2 * dim + 4 * (2 * 4 * labels + labels**2 + 2 * labels))
        check_memory(needed, "SIFT flow on these images", "resize them (half the size: a quarter of the memory) "
                     "or use --method local", device)  # fmt: skip
        progress = Progress(matcher.num_levels, "SIFT flow", "level")

        def level_done(index: int, level: dict) -> None:
            height, width = level["flow"].shape[-2:]
            progress.update(1, f"{height} x {width}, energy {float(level['energy'][-1].sum()):.6g}")

        try:
            return matcher(pair[:1], pair[1:], on_level=level_done)[0].cpu()
        finally:
            progress.close()
    from siftflow_nn.descriptor import SIFTFlowDescriptor
    from siftflow_nn.flow.local_matching import displacements, local_match

    radius = 4 if args.radius is None else args.radius
    check_memory(pixels * 4 * (2 * dim + 8), "local matching on these images", "resize them", device)
    descriptors = SIFTFlowDescriptor(args.cell_size, 1, True, args.bins).to(device)(pair)
    progress = Progress(len(displacements(radius)), "local matching", "displacement")
    try:
        result = local_match(descriptors[:1], descriptors[1:], radius, on_displacement=lambda: progress.update(1))
    finally:
        progress.close()
    return result[0][0].cpu()


def _write(path, kind: str, estimate: torch.Tensor) -> None:
    from siftflow_nn.viz import flow_to_color, write_flo

    if kind == "image":
        write_image(path, flow_to_color(estimate))
    elif kind == ".flo":
        write_flo(path, estimate)
    else:
        with atomic_path(path) as temporary:
            if kind == ".pt":
                torch.save(estimate, temporary)
            elif kind == ".npy":
                np.save(temporary, estimate.numpy())
            else:
                with open(temporary, "wb") as handle:
                    np.savez(handle, flow=estimate.numpy())
