"""``siftflow-nn extract-dataset``: the descriptors of a whole folder, in resumable shards."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from siftflow_nn.cli._arguments import CommandFailed, UsageError, add_descriptor_options, non_negative_int, positive_int
from siftflow_nn.lightning import DEFAULT_MAX_PIXELS

ACCELERATORS = ["auto", "cpu", "gpu", "cuda"]
STRATEGIES = ["auto", "ddp", "ddp_spawn", "ddp_fork"]


def register(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "extract-dataset", allow_abbrev=False, help="descriptors of an image folder, in resumable shards"
    )
    command.add_argument("root", help="image folder (searched recursively)")
    command.add_argument("-o", "--output-dir", required=True, help="folder for the shards and manifest.json")
    command.add_argument("--shard-size", type=positive_int, default=64, help="images per shard (default 64)")
    command.add_argument("--batch-size", type=positive_int, default=8, help="images per descriptor call (default 8)")
    command.add_argument("--store", choices=["uint8", "float16"], default="uint8", help="stored dtype")
    command.add_argument("--max-pixels", type=positive_int, default=DEFAULT_MAX_PIXELS,
                         help=f"larger images are recorded as failed (default {DEFAULT_MAX_PIXELS})")  # fmt: skip
    command.add_argument("--follow-symlinks", action="store_true",
                         help="follow symbolic links that point outside the input folder too")  # fmt: skip
    command.add_argument("--overwrite", action="store_true",
                         help="redo a run that was made with other options instead of refusing")  # fmt: skip
    command.add_argument("--workers", type=non_negative_int, default=2, help="DataLoader workers decoding images")
    command.add_argument("--accelerator", choices=ACCELERATORS, default="auto", help="Lightning's accelerator")
    command.add_argument("--devices", type=_devices, default=1, help="devices per node: N or auto (default 1)")
    command.add_argument("--num-nodes", type=positive_int, default=1, help="nodes (Lightning)")
    command.add_argument("--strategy", choices=STRATEGIES, default="auto", help="Lightning's strategy")
    add_descriptor_options(command)
    command.set_defaults(handler=extract_dataset)


def _devices(text: str) -> int | str:
    if text == "auto":
        return text
    return positive_int(text)


def extract_dataset(args: argparse.Namespace) -> None:
    from siftflow_nn.lightning import extraction

    if args.accelerator in ("gpu", "cuda") and not torch.cuda.is_available():
        raise UsageError(f"argument --accelerator: {args.accelerator} asked for, but no CUDA GPU is available")
    root = Path(args.root)
    if not root.is_dir():
        raise UsageError(f"argument root: {root}: no such folder")
    output = Path(args.output_dir)
    if output.exists() and not output.is_dir():
        raise UsageError(f"argument -o: {output} is a file, not a folder")
    options = extraction.ExtractionOptions(
        cell_size=tuple(args.cell_size),
        step_size=args.step,
        include_boundary=not args.no_boundary,
        num_bins=args.bins,
        store=args.store,
        max_pixels=args.max_pixels,
        shard_size=args.shard_size,
        follow_symlinks=args.follow_symlinks,
    )
    trainer_options = {
        "accelerator": args.accelerator,
        "devices": args.devices,
        "num_nodes": args.num_nodes,
        "strategy": args.strategy,
    }
    start = time.perf_counter()
    try:
        manifest = extraction.extract_dataset(root, output, options, args.batch_size, args.workers, trainer_options,
                                              overwrite=args.overwrite, progress=True)  # fmt: skip
    except extraction.ExtractionError as error:
        raise CommandFailed(str(error)) from None
    except OSError as error:
        where = f"{error.filename}: " if error.filename else ""
        raise CommandFailed(
            f"{where}{error.strerror or error} (what was written is kept: run again to resume)"
        ) from None
    if manifest is not None:
        print(extraction.summary(manifest, time.perf_counter() - start))
