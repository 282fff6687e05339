"""``siftflow-nn demo``: a synthetic pair with a known smooth warp, both matchers, pictures, errors."""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import torch

from siftflow_nn.cli._arguments import UsageError, add_device_option, device_from, non_negative_float, positive_int
from siftflow_nn.io import write_image
from siftflow_nn.metrics import end_point_error

_MARGIN = 8  # pixels left out of the errors: near the border part of the true match lies outside image 2
_SMALLEST = 2 * _MARGIN + 16  # room for the error's interior and a 4-level pyramid


def register(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "demo", allow_abbrev=False, help="a synthetic pair with known flow: pictures and errors"
    )
    command.add_argument("-o", "--output-dir", default="siftflow_demo", help="folder for the pictures")
    command.add_argument("--height", type=positive_int, default=160, help=f"at least {_SMALLEST} (default 160)")
    command.add_argument("--width", type=positive_int, default=224, help=f"at least {_SMALLEST} (default 224)")
    command.add_argument("--max-displacement", type=non_negative_float, default=4.0, help="pixels (default 4)")
    command.add_argument("--noise", type=non_negative_float, default=0.05, help="image noise std (default 0.05)")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--fast", action="store_true", help="faster SIFT flow (a third of the iterations)")
    add_device_option(command)
    command.set_defaults(handler=demo)


def demo(args: argparse.Namespace) -> None:
    """A textured pair with a known smooth warp: descriptors, both flows, pictures and errors."""
    if min(args.height, args.width) < _SMALLEST:
        raise UsageError(
            f"argument --height/--width: at least {_SMALLEST} pixels each, got {args.height} x {args.width}"
        )
    device = device_from(args.device)
    folder = Path(args.output_dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"argument -o: {folder} is a file, not a folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"argument -o: {folder}: cannot create the folder ({error.strerror})") from None
    from siftflow_nn.synthetic import synthetic_pair

    image1, image2, truth = synthetic_pair(args.height, args.width, args.max_displacement, seed=args.seed,
                                           noise=args.noise)  # fmt: skip
    results = _run_matchers(image1, image2, args, device)
    _write_pictures(folder, image1, image2, truth, results)
    print(f"demo: {args.height} x {args.width} textured pair, smooth warp up to {args.max_displacement:g} px, "
          f"noise {args.noise:g}, on {device}")  # fmt: skip
    rows = [
        ("descriptors (2 images, cell size 3)", results["descriptor_time"], None),
        (f"local_match (radius {results['radius']})", results["local_time"], _error(results["local"], truth)),
        ("SIFT flow (belief propagation)", results["sift_flow_time"], _error(results["sift_flow"], truth)),
        ("zero flow", None, _error(torch.zeros_like(truth), truth)),
        ("best integer flow (rounded truth)", None, _error(truth.round(), truth)),
    ]
    for name, seconds, error in rows:
        timing = f"{1000 * seconds:9.1f} ms" if seconds is not None else " " * 12
        print(f"  {name:<38}{timing}   " + (f"EPE {error:.3f} px" if error is not None else ""))
    print(f"wrote overview.png, the pictures and flow_sift_flow.flo to {folder}")


def _run_matchers(image1: torch.Tensor, image2: torch.Tensor, args: argparse.Namespace, device: torch.device) -> dict:
    from siftflow_nn.descriptor import SIFTFlowDescriptor
    from siftflow_nn.flow.local_matching import local_match
    from siftflow_nn.flow.sift_flow import SIFTFlow

    pair = torch.stack([image1, image2]).to(device)

    def timed(function):
        start = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return result, time.perf_counter() - start

    results: dict = {"radius": math.ceil(args.max_displacement) + 1}
    with torch.no_grad():
        descriptors, results["descriptor_time"] = timed(lambda: SIFTFlowDescriptor(cell_size=3).to(device)(pair))
        local = lambda: local_match(descriptors[:1], descriptors[1:], results["radius"])[0][0].cpu()  # noqa: E731
        results["local"], results["local_time"] = timed(local)
        matcher = SIFTFlow(fast=args.fast).to(device)
        results["sift_flow"], results["sift_flow_time"] = timed(lambda: matcher(pair[:1], pair[1:])[0].cpu())
    results["descriptor"] = descriptors[0].cpu()
    return results


def _write_pictures(folder: Path, image1, image2, truth: torch.Tensor, results: dict) -> None:
    from siftflow_nn.viz import descriptor_to_color, flow_to_color, picture_grid, write_flo

    largest = float(truth.square().sum(0).sqrt().max())
    pictures = {
        "image 1": ("image1.png", image1),
        "image 2": ("image2.png", image2),
        "descriptor 1 (3 principal components)": ("descriptor1.png", descriptor_to_color(results["descriptor"])),
        "true flow": ("flow_truth.png", flow_to_color(truth, largest)),
        "local_match": ("flow_local.png", flow_to_color(results["local"], largest)),
        "SIFT flow": ("flow_sift_flow.png", flow_to_color(results["sift_flow"], largest)),
    }
    for name, picture in pictures.values():
        write_image(folder / name, picture)
    write_image(folder / "overview.png", picture_grid({caption: picture for caption, (_, picture) in pictures.items()}))
    write_flo(folder / "flow_sift_flow.flo", results["sift_flow"])


def _error(estimate: torch.Tensor, truth: torch.Tensor) -> float:
    return float(end_point_error(estimate, truth, _MARGIN))
