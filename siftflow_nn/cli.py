"""The ``siftflow-nn`` command line: extract, flow, show, demo (and extract-dataset).

Every failure the user can cause (a missing or unreadable image, an empty list, images of
different sizes, an output that cannot be written) ends with a one-line ``siftflow-nn: error: ...``
naming the file, exit status 2, and no partial output: files are written under a temporary name
and renamed when complete.
"""

import argparse
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from siftflow_nn.descriptor import SIFTFlowDescriptor, descriptor_to_hwc, to_uint8
from siftflow_nn.io import ImageReadError, atomic_path, read_image, write_image

__all__ = ["main"]


class UsageError(Exception):
    """A problem with the user's input or environment: reported in one line, exit status 2."""


def _cell_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"cell size must be an int or a comma-separated list, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"cell sizes must be positive, got {text!r}")
    return sizes


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text}")
    return value


def _add_descriptor_options(parser: argparse.ArgumentParser, cell_size: str = "2") -> None:
    group = parser.add_argument_group("descriptor")
    group.add_argument(
        "--cell-size",
        type=_cell_sizes,
        default=_cell_sizes(cell_size),
        help=f"cell size, or several comma-separated for multi-scale (default {cell_size})",
    )
    group.add_argument("--step", type=_positive, default=1, help="sampling step (default 1)")
    group.add_argument("--no-boundary", action="store_true", help="drop the 2 * cell-size border")
    group.add_argument("--bins", type=_positive, default=8, help="orientation bins (default 8)")
    group.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")


def _device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}: use cpu, cuda, cuda:N or auto") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"device {name!r} asked for, but no CUDA GPU is available")
    return device


def _descriptor(args: argparse.Namespace) -> SIFTFlowDescriptor:
    return SIFTFlowDescriptor(args.cell_size, args.step, not args.no_boundary, args.bins)


def _read(path: str) -> torch.Tensor:
    try:
        return read_image(path)
    except ImageReadError as error:
        raise UsageError(str(error)) from None


def _check_writable(path: Path) -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.is_dir():
        raise UsageError(f"{path}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK):
        raise UsageError(f"{path}: the folder {folder} is not writable")


# --- extract -----------------------------------------------------------------------------------

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def _keys(paths: Sequence[str]) -> list[str]:
    """Array names: the file names, or the paths as given where two files share a name."""
    names = [Path(path).name for path in paths]
    counts = Counter(names)
    return [name if counts[name] == 1 else path for name, path in zip(names, paths)]


def extract(args: argparse.Namespace) -> None:
    output = Path(args.output)
    _check_writable(output)
    device = _device(args.device)
    descriptor = _descriptor(args).to(device)
    dtype = DTYPES[args.dtype]
    images = {path: _read(path) for path in args.images}  # read all first: fail before any work
    groups: dict[tuple[int, ...], list[str]] = defaultdict(list)
    for path, image in images.items():
        groups[tuple(image.shape)].append(path)
    keys = dict(zip(args.images, _keys(args.images)))
    results: dict[str, np.ndarray | torch.Tensor] = {}
    progress = _progress(len(images), "extract")
    with torch.no_grad():
        for paths in groups.values():
            for start in range(0, len(paths), args.batch_size):
                chunk = paths[start : start + args.batch_size]
                batch = torch.stack([images[path] for path in chunk]).to(device=device, dtype=dtype)
                out = descriptor(batch)
                if args.layout == "hwc":
                    out = descriptor_to_hwc(out)
                out = to_uint8(out) if args.uint8 else out.to(dtype)
                for path, item in zip(chunk, out.cpu()):
                    results[keys[path]] = item if args.format == "pt" else _to_numpy(item)
                progress.update(len(chunk))
    progress.close()
    with atomic_path(output) as temporary:
        if args.format == "pt":
            torch.save(results, temporary)
        else:
            with open(temporary, "wb") as handle:
                np.savez(handle, **results)
    print(f"wrote {len(results)} descriptors to {output}")


def _to_numpy(tensor: torch.Tensor) -> np.ndarray:
    return (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()


class _NoProgress:
    def update(self, count: int) -> None:
        pass

    def close(self) -> None:
        pass


def _progress(total: int, description: str):
    """A tqdm bar on a terminal when there is enough work to watch; silent otherwise."""
    if total < 8 or not sys.stderr.isatty():
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(total=total, desc=description, unit="image")


class _LevelProgress:
    """SIFT flow's progress, a pyramid level at a time: a bar on a terminal, else a line per level."""

    def __init__(self, levels: int) -> None:
        self.levels, self.start = levels, time.perf_counter()
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=levels, desc="SIFT flow", unit="level")

    def level_done(self, index: int, level: dict[str, torch.Tensor]) -> None:
        height, width = level["flow"].shape[-2:]
        energy = float(level["energy"][-1].sum())
        if self.bar is not None:
            self.bar.set_postfix_str(f"{height} x {width}, energy {energy:.4g}")
            self.bar.update(1)
        else:
            done = self.levels - index
            elapsed = time.perf_counter() - self.start
            print(
                f"SIFT flow: level {done}/{self.levels} ({height} x {width}) done at {elapsed:.1f} s, "
                f"energy {energy:.6g}",
                file=sys.stderr,
            )

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


# --- flow, show, demo --------------------------------------------------------------------------


def _flow(image1: torch.Tensor, image2: torch.Tensor, method: str, radius: int, args: argparse.Namespace):
    """``(2, H, W)`` flow between two ``(C, H, W)`` images with the chosen method."""
    device = _device(args.device)
    pair = torch.stack([image1, image2]).to(device)
    if method == "sift-flow":
        from siftflow_nn.sift_flow import SIFTFlow

        matcher = SIFTFlow(cell_size=args.cell_size, num_bins=args.bins, fast=args.fast).to(device)
        if min(pair.shape[-2:]) < matcher.minimum_size():
            raise UsageError(f"images of {tuple(pair.shape[-2:])} are too small for SIFT flow: use --method local")
        progress = _LevelProgress(matcher.num_levels)
        try:
            return matcher(pair[:1], pair[1:], on_level=progress.level_done)[0].cpu()
        finally:
            progress.close()
    from siftflow_nn.matching import local_match

    descriptors = SIFTFlowDescriptor(args.cell_size, 1, True, args.bins).to(device)(pair)
    return local_match(descriptors[:1], descriptors[1:], radius)[0][0].cpu()


def flow(args: argparse.Namespace) -> None:
    from siftflow_nn.viz import flow_to_color, write_flo

    output = Path(args.output)
    _check_writable(output)
    if args.flo:
        _check_writable(Path(args.flo))
    image1, image2 = _read(args.image1), _read(args.image2)
    if image1.shape != image2.shape:
        raise UsageError(
            f"{args.image1} and {args.image2} differ in size: {tuple(image1.shape[1:])} and {tuple(image2.shape[1:])}"
        )
    start = time.perf_counter()
    with torch.no_grad():
        estimate = _flow(image1, image2, args.method, args.radius, args)
    elapsed = time.perf_counter() - start
    write_image(output, flow_to_color(estimate))
    if args.flo:
        write_flo(args.flo, estimate)
    print(f"{args.method} flow in {elapsed:.2f} s; wrote {output}" + (f" and {args.flo}" if args.flo else ""))


def show(args: argparse.Namespace) -> None:
    from siftflow_nn.viz import descriptor_to_color

    output = Path(args.output)
    _check_writable(output)
    image = _read(args.image)
    device = _device(args.device)
    with torch.no_grad():
        descriptor = _descriptor(args).to(device)(image[None].to(device))[0].cpu()
    write_image(output, descriptor_to_color(descriptor))
    print(f"wrote {output}")


def demo(args: argparse.Namespace) -> None:
    """A textured pair with a known smooth warp: descriptors, both flows, pictures and errors."""
    from siftflow_nn.matching import local_match
    from siftflow_nn.sift_flow import SIFTFlow
    from siftflow_nn.synthetic import synthetic_pair
    from siftflow_nn.viz import descriptor_to_color, flow_to_color, picture_grid, write_flo

    folder = Path(args.output_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{folder}: cannot create the output folder ({error.strerror})") from None
    _check_writable(folder / "image1.png")
    device = _device(args.device)
    image1, image2, truth = synthetic_pair(
        args.height, args.width, args.max_displacement, seed=args.seed, noise=args.noise
    )
    pair = torch.stack([image1, image2]).to(device)

    def timed(function):
        start = time.perf_counter()
        result = function()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        return result, time.perf_counter() - start

    with torch.no_grad():
        descriptors, descriptor_time = timed(lambda: SIFTFlowDescriptor(cell_size=3).to(device)(pair))
        radius = int(np.ceil(args.max_displacement)) + 1
        local, local_time = timed(lambda: local_match(descriptors[:1], descriptors[1:], radius)[0][0].cpu())
        matcher = SIFTFlow(fast=args.fast).to(device)
        sift_flow, sift_flow_time = timed(lambda: matcher(pair[:1], pair[1:])[0].cpu())

    def end_point_error(estimate: torch.Tensor) -> float:
        margin = 8  # the border, where part of the true match lies outside image 2
        return float((estimate - truth).square().sum(0).sqrt()[margin:-margin, margin:-margin].mean())

    largest = float(truth.square().sum(0).sqrt().max())
    pictures = {
        "image1.png": image1,
        "image2.png": image2,
        "descriptor1.png": descriptor_to_color(descriptors[0].cpu()),
        "flow_truth.png": flow_to_color(truth, largest),
        "flow_local.png": flow_to_color(local, largest),
        "flow_sift_flow.png": flow_to_color(sift_flow, largest),
    }
    for name, picture in pictures.items():
        write_image(folder / name, picture)
    captions = ["image 1", "image 2", "descriptor 1 (3 principal components)", "true flow", "local_match", "SIFT flow"]
    write_image(folder / "overview.png", picture_grid(dict(zip(captions, pictures.values()))))
    write_flo(folder / "flow_sift_flow.flo", sift_flow)
    print(
        f"demo: {args.height} x {args.width} textured pair, smooth warp up to {args.max_displacement:g} px, "
        f"noise {args.noise:g}, on {device}"
    )
    rows = [
        ("descriptors (2 images, cell size 3)", descriptor_time, None),
        (f"local_match (radius {radius})", local_time, end_point_error(local)),
        ("SIFT flow (belief propagation)", sift_flow_time, end_point_error(sift_flow)),
        ("zero flow", None, end_point_error(torch.zeros_like(truth))),
        ("best integer flow (rounded truth)", None, end_point_error(truth.round())),
    ]
    for name, seconds, error in rows:
        timing = f"{1000 * seconds:9.1f} ms" if seconds is not None else " " * 12
        epe = f"EPE {error:.3f} px" if error is not None else ""
        print(f"  {name:<38}{timing}   {epe}")
    print(f"wrote overview.png, {', '.join(sorted(pictures))} and flow_sift_flow.flo to {folder}")


# --- entry point -------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="siftflow-nn", description="SIFT Flow descriptors and dense flow.")
    commands = parser.add_subparsers(dest="command", required=True)

    command = commands.add_parser("extract", help="write the descriptors of images to a file")
    command.add_argument("images", nargs="+", help="image files (PNG, JPEG, ...)")
    command.add_argument("-o", "--output", required=True, help="output file (.npz, or .pt with --format pt)")
    command.add_argument("--format", choices=["npz", "pt"], default="npz", help="file format (default npz)")
    command.add_argument("--uint8", action="store_true", help="store the original's uint8 form")
    command.add_argument(
        "--layout",
        choices=["hwc", "chw"],
        default="hwc",
        help="H' x W' x D as the original (default) or D x H' x W' as PyTorch",
    )
    command.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="compute dtype")
    command.add_argument("--batch-size", type=_positive, default=8, help="images per batch (default 8)")
    _add_descriptor_options(command)
    command.set_defaults(handler=extract)

    command = commands.add_parser("flow", help="dense flow between two images, as a colour picture")
    command.add_argument("image1")
    command.add_argument("image2")
    command.add_argument("-o", "--output", required=True, help="colour-coded flow (.png)")
    command.add_argument("--flo", help="also write the flow in the Middlebury .flo format")
    command.add_argument(
        "--method",
        choices=["sift-flow", "local"],
        default="sift-flow",
        help="SIFT flow (BP, default) or exhaustive local matching",
    )
    command.add_argument("--radius", type=_positive, default=4, help="search radius of --method local")
    command.add_argument("--fast", action="store_true", help="faster SIFT flow (fewer iterations)")
    _add_descriptor_options(command, cell_size="3")
    command.set_defaults(handler=flow)

    command = commands.add_parser("show", help="a descriptor image as colours (first 3 principal components)")
    command.add_argument("image")
    command.add_argument("-o", "--output", required=True, help="output picture (.png)")
    _add_descriptor_options(command)
    command.set_defaults(handler=show)

    command = commands.add_parser("demo", help="a synthetic pair with known flow: pictures and errors")
    command.add_argument("-o", "--output-dir", default="siftflow_demo", help="folder for the pictures")
    command.add_argument("--height", type=_positive, default=160)
    command.add_argument("--width", type=_positive, default=224)
    command.add_argument("--max-displacement", type=float, default=4.0)
    command.add_argument("--noise", type=float, default=0.05, help="image noise std (default 0.05)")
    command.add_argument("--seed", type=int, default=0)
    command.add_argument("--fast", action="store_true", help="faster SIFT flow (fewer iterations)")
    command.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    command.set_defaults(handler=demo)

    from siftflow_nn.extraction import add_extract_dataset_command

    add_extract_dataset_command(commands, _add_descriptor_options)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        args.handler(args)
    # ValueError: bad combinations of options caught by the library, e.g. an image too small.
    except (UsageError, ValueError) as error:
        print(f"siftflow-nn: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
