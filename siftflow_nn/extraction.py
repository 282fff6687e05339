"""``siftflow-nn extract-dataset``: descriptors of a whole image folder, in shards, resumable.

The folder's images (recursive, sorted by path) are cut into shards of N images. Each shard is a
work item of a Lightning ``Trainer.predict`` run: DataLoader workers decode the images, the
descriptor runs on whatever the trainer runs on (CPU, one GPU, many GPUs or nodes with DDP, the
distributed engine being Lightning's), and each rank writes the shards it was given:

    OUT_DIR/shards/shard_00012.npz    the descriptors (uint8 or float16), one array per image
    OUT_DIR/shards/shard_00012.json   its part of the manifest, written last (= shard complete)
    OUT_DIR/manifest.json             every image: path, shape, shard and key, or its error

Both shard files are written under temporary names and renamed, so a killed run leaves no partial
shard behind; a new run skips the complete shards and does the rest. An unreadable image is
recorded as failed, with its error, and the run goes on.
"""

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from siftflow_nn.descriptor import SIFTFlowDescriptor, to_uint8
from siftflow_nn.io import IMAGE_EXTENSIONS, ImageReadError, atomic_path, read_image

__all__ = ["ShardDataset", "add_extract_dataset_command", "extract_dataset", "find_images", "merge_manifest"]

MANIFEST_VERSION = 1


def find_images(root: str | Path, extensions: tuple[str, ...] = IMAGE_EXTENSIONS) -> list[str]:
    """Image files under ``root`` (recursive, by extension), as sorted POSIX paths relative to it."""
    root = Path(root)
    found = [path for path in root.rglob("*") if path.is_file() and path.suffix.lower() in extensions]
    return sorted(path.relative_to(root).as_posix() for path in found)


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


class ShardDataset(Dataset):
    """Item ``i`` is one shard: ``(shard index, [(relative path, image or None, error or None), ...])``."""

    def __init__(self, root: str | Path, shards: list[tuple[int, list[str]]]) -> None:
        self.root, self.shards = Path(root), shards

    def __len__(self) -> int:
        return len(self.shards)

    def __getitem__(self, item: int):
        index, paths = self.shards[item]
        entries = []
        for path in paths:
            try:
                entries.append((path, read_image(self.root / path), None))
            except ImageReadError as error:
                entries.append((path, None, str(error)))
        return index, entries


def _is_complete(shard_dir: Path, index: int, paths: list[str]) -> bool:
    """A shard is done when its manifest part exists and lists exactly these images."""
    part = shard_dir / f"{shard_name(index)}.json"
    if not part.exists() or not (shard_dir / f"{shard_name(index)}.npz").exists():
        return False
    try:
        return [entry["path"] for entry in json.loads(part.read_text())["images"]] == paths
    except (ValueError, KeyError):
        return False


def _predictor_class():
    """The LightningModule, defined lazily so that the package imports without Lightning."""
    import pytorch_lightning as pl

    class DescriptorWriter(pl.LightningModule):
        """Computes a shard's descriptors and writes them (predict_step returns the image count)."""

        def __init__(self, output_dir: str, options: dict, store: str, batch_size: int) -> None:
            super().__init__()
            self.descriptor = SIFTFlowDescriptor(**options)
            self.shard_dir = Path(output_dir) / "shards"
            self.store, self.batch_size = store, batch_size

        def on_predict_start(self) -> None:
            # Ranks that share a CPU split its cores: each process would otherwise start one thread
            # per core, and two ranks on two cores would fight over them.
            if self.device.type == "cpu" and self.trainer.num_devices > 1:
                torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.trainer.num_devices))

        def predict_step(self, batch, batch_index: int) -> int:
            index, entries = batch
            by_shape: dict[tuple[int, ...], list[int]] = defaultdict(list)
            for position, (_, image, _) in enumerate(entries):
                if image is not None:
                    by_shape[tuple(image.shape)].append(position)
            arrays: dict[str, np.ndarray] = {}
            for positions in by_shape.values():
                for start in range(0, len(positions), self.batch_size):
                    chunk = positions[start : start + self.batch_size]
                    images = torch.stack([entries[position][1] for position in chunk]).to(self.device)
                    out = self.descriptor(images)
                    out = to_uint8(out) if self.store == "uint8" else out.half()
                    for position, item in zip(chunk, out.cpu().numpy()):
                        arrays[f"image_{position:05d}"] = item
            records = []
            for position, (path, image, error) in enumerate(entries):
                if image is None:
                    records.append({"path": path, "status": "failed", "error": error})
                else:
                    key = f"image_{position:05d}"
                    records.append(
                        {
                            "path": path,
                            "status": "ok",
                            "shape": list(image.shape),
                            "shard": f"{shard_name(index)}.npz",
                            "key": key,
                            "descriptor_shape": list(arrays[key].shape),
                        }
                    )
            with atomic_path(self.shard_dir / f"{shard_name(index)}.npz") as temporary, open(temporary, "wb") as handle:
                np.savez(handle, **arrays)
            with atomic_path(self.shard_dir / f"{shard_name(index)}.json") as temporary:
                temporary.write_text(json.dumps({"shard": index, "images": records}))
            return len(entries)

    return DescriptorWriter


def _throughput_callback():
    import pytorch_lightning as pl

    class ImagesPerSecond(pl.Callback):
        """Images per second on the predict progress bar, and the steady rate at the end (rank 0).

        The steady rate is measured from the end of the first shard, so that start-up (workers,
        first allocations) is not counted; with one shard it falls back to the whole run.
        """

        def on_predict_start(self, trainer, module) -> None:
            self.start, self.images = time.perf_counter(), 0
            self.warm_start, self.warm_images = self.start, 0

        def on_predict_batch_end(self, trainer, module, outputs, batch, batch_index, dataloader_index=0) -> None:
            self.images += int(outputs) * trainer.world_size  # the other ranks go at the same pace
            if batch_index == 0:
                self.warm_start, self.warm_images = time.perf_counter(), self.images
            bar = getattr(trainer.progress_bar_callback, "predict_progress_bar", None)
            if bar is not None:
                bar.set_postfix(images_per_s=f"{self.images / (time.perf_counter() - self.start):.1f}")

        def on_predict_end(self, trainer, module) -> None:
            now = time.perf_counter()
            steady = self.images > self.warm_images
            images = self.images - self.warm_images if steady else self.images
            seconds = now - (self.warm_start if steady else self.start)
            if trainer.global_rank == 0 and seconds > 0:
                print(
                    f"extracted {self.images} images in {now - self.start:.1f} s; "
                    f"steady rate {images / seconds:.2f} images/s",
                    file=sys.stderr,
                )

    return ImagesPerSecond()


def merge_manifest(output_dir: str | Path, paths: list[str], shard_size: int, root: str, options: dict) -> dict:
    """Merge the shards' manifest parts into ``OUT_DIR/manifest.json`` (written atomically)."""
    shard_dir = Path(output_dir) / "shards"
    images = []
    for index in range((len(paths) + shard_size - 1) // shard_size):
        part = json.loads((shard_dir / f"{shard_name(index)}.json").read_text())
        images.extend(part["images"])
    manifest = {
        "version": MANIFEST_VERSION,
        "root": str(root),
        "shard_size": shard_size,
        "options": options,
        "images": images,
    }
    with atomic_path(Path(output_dir) / "manifest.json") as temporary:
        temporary.write_text(json.dumps(manifest, indent=1))
    return manifest


def extract_dataset(
    root: str | Path,
    output_dir: str | Path,
    options: dict | None = None,
    shard_size: int = 64,
    batch_size: int = 8,
    store: str = "uint8",
    num_workers: int = 2,
    trainer_options: dict | None = None,
) -> dict | None:
    """Extract the descriptors of every image under ``root`` into shards; returns the manifest.

    Args:
        root: image folder (searched recursively).
        output_dir: where the shards and ``manifest.json`` go; shards already complete are kept.
        options: :class:`~siftflow_nn.SIFTFlowDescriptor` keyword arguments.
        shard_size: images per shard.
        batch_size: images per descriptor call (images of one size only).
        store: ``"uint8"`` (the original's form) or ``"float16"``.
        num_workers: DataLoader workers decoding images.
        trainer_options: ``pytorch_lightning.Trainer`` arguments (``accelerator``, ``devices``,
            ``num_nodes``, ``strategy``, ...).

    Returns:
        The manifest on rank 0 (the process that merges it), ``None`` on the other ranks.
    """
    import pytorch_lightning as pl
    from torch.utils.data import DataLoader

    options = dict(options or {})
    if store not in ("uint8", "float16"):
        raise ValueError(f"store must be 'uint8' or 'float16', got {store!r}")
    root, output_dir = Path(root), Path(output_dir)
    if not root.is_dir():
        raise ImageReadError(f"{root}: no such folder")
    paths = find_images(root)
    if not paths:
        raise ImageReadError(f"{root}: no image files found (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    shard_dir = output_dir / "shards"
    shard_dir.mkdir(parents=True, exist_ok=True)
    shards = [
        (index, paths[start : start + shard_size]) for index, start in enumerate(range(0, len(paths), shard_size))
    ]
    todo = [(index, names) for index, names in shards if not _is_complete(shard_dir, index, names)]

    trainer = pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        callbacks=[_throughput_callback()],
        **{"accelerator": "auto", "devices": 1, **(trainer_options or {})},
    )
    if todo:
        loader = DataLoader(ShardDataset(root, todo), batch_size=None, num_workers=num_workers)
        writer = _predictor_class()(str(output_dir), options, store, batch_size)
        trainer.predict(writer, loader, return_predictions=False)
    trainer.strategy.barrier()
    if trainer.global_rank != 0:
        return None
    return merge_manifest(output_dir, paths, shard_size, str(root), {**options, "store": store})


def add_extract_dataset_command(commands, add_descriptor_options: Callable) -> None:
    """Register ``extract-dataset`` on the CLI's subcommands."""
    command = commands.add_parser("extract-dataset", help="descriptors of an image folder, in resumable shards")
    command.add_argument("root", help="image folder (searched recursively)")
    command.add_argument("-o", "--output-dir", required=True, help="folder for the shards and manifest.json")
    command.add_argument("--shard-size", type=int, default=64, help="images per shard (default 64)")
    command.add_argument("--batch-size", type=int, default=8, help="images per descriptor call (default 8)")
    command.add_argument("--store", choices=["uint8", "float16"], default="uint8", help="stored dtype")
    command.add_argument("--workers", type=int, default=2, help="DataLoader workers decoding images")
    command.add_argument("--accelerator", default="auto", help="cpu, gpu or auto (Lightning)")
    command.add_argument("--devices", default="1", help="devices per node (Lightning), e.g. 2 or auto")
    command.add_argument("--num-nodes", type=int, default=1, help="nodes (Lightning)")
    command.add_argument("--strategy", default="auto", help="auto, ddp, ... (Lightning)")
    add_descriptor_options(command)
    command.set_defaults(handler=_run_command)


def _run_command(args: argparse.Namespace) -> None:
    from siftflow_nn.cli import UsageError

    if args.device != "auto":
        raise UsageError("extract-dataset places work with --accelerator and --devices, not --device")
    devices = int(args.devices) if args.devices.isdigit() else args.devices
    options = {
        "cell_size": args.cell_size,
        "step_size": args.step,
        "include_boundary": not args.no_boundary,
        "num_bins": args.bins,
    }
    try:
        Path(args.output_dir).mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"{args.output_dir}: cannot create the output folder ({error.strerror})") from None
    try:
        trainer_options = {
            "accelerator": args.accelerator,
            "devices": devices,
            "num_nodes": args.num_nodes,
            "strategy": args.strategy,
        }
        manifest = extract_dataset(
            args.root,
            args.output_dir,
            options,
            args.shard_size,
            args.batch_size,
            args.store,
            args.workers,
            trainer_options,
        )
    except ImageReadError as error:
        raise UsageError(str(error)) from None
    if manifest is not None:
        failed = sum(entry["status"] == "failed" for entry in manifest["images"])
        print(f"wrote {len(manifest['images']) - failed} descriptors ({failed} failed) to {args.output_dir}")
