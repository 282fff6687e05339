"""``siftflow-nn extract-dataset``: descriptors of a whole image folder, in shards, resumable.

The folder's images (recursive, sorted by path, see ``find_images`` for links and unreadable
entries) are cut into shards of ``shard_size`` images, and the shards are shared out among the
ranks of a Lightning ``Trainer.predict`` run (one CPU, GPUs, nodes, DDP). A rank streams each of
its shards to disk a batch at a time, so memory stays that of a batch whatever the shard size;
DataLoader workers decode the images. The format is ``_shards.py``'s. A run that was killed, or
stopped by a full disk, resumes: shards whose files match their manifest part (size, SHA-256,
options) are kept, the others redone. A resume with other options is refused unless
``overwrite=True``. An image that cannot be read, has too many pixels or too few for the options
is recorded as failed, with the reason, and the run goes on.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import sys
import threading
import time
import warnings
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from siftflow_nn._checks import check_cell_sizes, check_positive_int
from siftflow_nn._progress import Progress
from siftflow_nn.descriptor import SIFTFlowDescriptor, descriptor_size, to_uint8
from siftflow_nn.io import IMAGE_EXTENSIONS, ImageReadError, read_image
from siftflow_nn.lightning import DEFAULT_MAX_PIXELS, _shards

try:  # Lightning is the optional "lightning" extra; everything else here works without it
    import pytorch_lightning as pl
except ImportError:  # pragma: no cover - exercised where the extra is missing
    pl = None

__all__ = ["ExtractionError", "ExtractionOptions", "extract_dataset", "find_images"]

_CALL_BYTES = 512 << 20  # float descriptors computed per call at most (a batch is cut to fit)


class ExtractionError(RuntimeError):
    """A run that cannot start or go on: the message says why, in one line."""


@dataclass(frozen=True)
class ExtractionOptions:
    """Everything that decides what a run writes; a resume must use the same."""

    cell_size: tuple[int, ...] = (2,)
    step_size: int = 1
    include_boundary: bool = True
    num_bins: int = 8
    store: str = "uint8"
    max_pixels: int = DEFAULT_MAX_PIXELS
    shard_size: int = 64
    follow_symlinks: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "cell_size", check_cell_sizes(self.cell_size))
        for name in ("step_size", "num_bins", "max_pixels", "shard_size"):
            check_positive_int(getattr(self, name), name)
        if self.store not in ("uint8", "float16"):
            raise ValueError(f"store must be 'uint8' or 'float16', got {self.store!r}")
        for name in ("include_boundary", "follow_symlinks"):
            if not isinstance(getattr(self, name), bool):
                raise TypeError(f"{name} must be a bool, got {getattr(self, name)!r}")

    def as_json(self) -> dict:
        return {**asdict(self), "cell_size": list(self.cell_size)}

    def differences(self, recorded: dict) -> list[str]:
        """The options whose recorded values differ from these, as ``name (recorded -> now)``."""
        ours = self.as_json()
        return [
            f"{name} ({recorded.get(name)!r} -> {ours[name]!r})" for name in ours if recorded.get(name) != ours[name]
        ]

    def descriptor(self) -> SIFTFlowDescriptor:
        return SIFTFlowDescriptor(list(self.cell_size), self.step_size, self.include_boundary, self.num_bins)

    def too_small(self, height: int, width: int) -> str | None:
        """Why an image of this size has no descriptor under these options, or None."""
        out_h, out_w = descriptor_size(height, width, list(self.cell_size), self.step_size, self.include_boundary)
        if out_h >= 1 and out_w >= 1:
            return None
        return (
            f"{height} x {width} is too small for cell_size={list(self.cell_size)}, step_size={self.step_size}, "
            f"include_boundary={self.include_boundary}"
        )


# --- the input folder ----------------------------------------------------------------------------


def find_images(
    root: str | Path, follow_symlinks: bool = False, extensions: tuple[str, ...] = IMAGE_EXTENSIONS
) -> tuple[list[str], dict[str, str]]:
    """The image files under ``root``, and the entries left out with the reason.

    Files are chosen by extension (others are ignored, not reported). Symbolic links, to files or
    folders, are followed when their target lies inside ``root``; links pointing outside are left
    out unless ``follow_symlinks``; dangling links and folders that cannot be read are left out.
    A folder reached twice (a link loop) is walked once.

    Returns:
        ``(paths, skipped)``: sorted POSIX paths relative to ``root``, and ``{path: reason}``.
    """
    root = Path(root)
    top = root.resolve()
    paths: list[str] = []
    skipped: dict[str, str] = {}
    visited = {top}

    def walk(folder: Path, relative: str) -> None:
        try:
            entries = sorted(os.scandir(folder), key=lambda entry: entry.name)
        except OSError as error:
            skipped[relative or "."] = f"folder not readable ({error.strerror})"
            return
        for entry in entries:
            name = f"{relative}/{entry.name}" if relative else entry.name
            path = Path(entry.path)
            reason = _link_problem(path, top, follow_symlinks) if entry.is_symlink() else None
            if reason is not None:
                skipped[name] = reason
            elif _is_folder(entry):
                target = path.resolve()
                if target not in visited:  # else a folder reached again through a link
                    visited.add(target)
                    walk(path, name)
            elif path.suffix.lower() in extensions:
                paths.append(name)

    walk(root, "")
    return sorted(paths), skipped


def _link_problem(path: Path, top: Path, follow_symlinks: bool) -> str | None:
    """Why a symbolic link is left out, or None to follow it."""
    target = path.resolve()
    if not target.exists():
        return "dangling symbolic link"
    if not follow_symlinks and not target.is_relative_to(top):
        return "symbolic link to outside the input folder (--follow-symlinks follows it)"
    return None


def _is_folder(entry: os.DirEntry) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


# --- the work: shards cut into chunks of a batch ---------------------------------------------------


@dataclass(frozen=True)
class Chunk:
    """A batch of one shard's images: what one ``predict_step`` gets."""

    shard: int
    number: int  # within the shard
    count: int  # chunks in the shard
    paths: tuple[str, ...]
    first: int  # position of the first image within the shard


class ChunkDataset(Dataset):
    """Item ``i`` is ``(chunk, [(path, image or None, error or None), ...])``, decoded here (in the
    DataLoader workers), every image checked against the pixel budget and the options' minimum."""

    def __init__(self, root: Path, chunks: list[Chunk], options: ExtractionOptions) -> None:
        self.root, self.chunks, self.options = root, chunks, options

    def __len__(self) -> int:
        return len(self.chunks)

    def __getitem__(self, item: int):
        chunk = self.chunks[item]
        entries = []
        for path in chunk.paths:
            try:
                image = read_image(self.root / path, max_pixels=self.options.max_pixels)
                reason = self.options.too_small(*image.shape[-2:])
                if reason is not None:
                    raise ImageReadError(f"{self.root / path}: {reason}")
                entries.append((path, image, None))
            except ImageReadError as error:
                entries.append((path, None, str(error)))
        return chunk, entries


def plan_chunks(shards: list[tuple[int, list[str]]], batch_size: int) -> list[Chunk]:
    chunks = []
    for index, paths in shards:
        starts = range(0, len(paths), batch_size)
        for number, start in enumerate(starts):
            chunks.append(Chunk(index, number, len(starts), tuple(paths[start : start + batch_size]), start))
    return chunks


# --- the Lightning side ------------------------------------------------------------------------------

_LightningModule = pl.LightningModule if pl is not None else torch.nn.Module
_Callback = pl.Callback if pl is not None else object


class DescriptorWriter(_LightningModule):
    """Computes each chunk's descriptors and streams them into its shard; the rank's share of the
    shards is chosen here (``predict_dataloader``), so that no rank waits for one it never gets.
    """

    def __init__(
        self,
        root: str,
        output_dir: str,
        shards: list[tuple[int, list[str]]],
        options: ExtractionOptions,
        batch_size: int,
        num_workers: int,
    ) -> None:
        super().__init__()
        # A rank may have no shard at all (more ranks than shards left): it then simply idles.
        self.allow_zero_length_dataloader_with_multiple_devices = True
        self.root, self.shard_dir = Path(root), Path(output_dir) / _shards.SHARD_FOLDER
        self.shards, self.options = shards, options
        self.batch_size, self.num_workers = batch_size, num_workers
        self.descriptor = options.descriptor()
        self._writer: _shards.ShardWriter | None = None
        self._records: list[dict] = []

    def setup(self, stage: str) -> None:
        if self.trainer.global_rank > 0 and self.trainer.num_nodes == 1:
            _exit_with_parent()

    def predict_dataloader(self) -> DataLoader:
        rank, world = self.trainer.global_rank, self.trainer.world_size
        mine = self.shards[rank::world]
        dataset = ChunkDataset(self.root, plan_chunks(mine, self.batch_size), self.options)
        return DataLoader(dataset, batch_size=None, num_workers=self.num_workers, collate_fn=_keep)

    def transfer_batch_to_device(self, batch, device: torch.device, dataloader_idx: int):
        return batch  # the images go to the device in predict_step, grouped by size

    def on_predict_start(self) -> None:
        # Ranks that share a CPU split its cores: each process would otherwise start one thread
        # per core, and two ranks on two cores would fight over them.
        if self.device.type == "cpu" and self.trainer.num_devices > 1:
            torch.set_num_threads(max(1, (os.cpu_count() or 1) // self.trainer.num_devices))

    def predict_step(self, batch, batch_index: int) -> int:
        chunk, entries = batch
        if chunk.number == 0:
            self._writer, self._records = _shards.ShardWriter(self.shard_dir, chunk.shard), []
        shapes: dict[tuple[int, ...], list[int]] = defaultdict(list)
        for position, (_, image, _) in enumerate(entries):
            if image is not None:
                shapes[tuple(image.shape)].append(position)
        stored: dict[int, tuple[int, ...]] = {}
        for positions in shapes.values():
            for group in self._calls(positions, entries):
                images = torch.stack([entries[position][1] for position in group]).to(self.device)
                out = self.descriptor(images)
                out = to_uint8(out) if self.options.store == "uint8" else out.half()
                for position, array in zip(group, out.cpu().numpy()):
                    self._writer.add(_key(chunk.first + position), array)
                    stored[position] = array.shape
        for position, (path, image, error) in enumerate(entries):
            record = {"path": _shards.json_path(path)}
            if image is None:
                record.update(status="failed", error=_shards.json_path(error))
            else:
                record.update(status="ok", shape=list(image.shape), key=_key(chunk.first + position))
                record["descriptor_shape"] = list(stored[position])
            self._records.append(record)
        if chunk.number == chunk.count - 1:
            self._finish_shard(chunk.shard)
        return len(entries)

    def _calls(self, positions: list[int], entries: list) -> Iterator[list[int]]:
        """Same-size images in calls of at most ``batch_size`` and at most 512 MB of float output."""
        _, height, width = entries[positions[0]][1].shape
        out_h, out_w = descriptor_size(height, width, list(self.options.cell_size), self.options.step_size,
                                       self.options.include_boundary)  # fmt: skip
        per_image = 4 * 16 * self.options.num_bins * len(self.options.cell_size) * out_h * out_w
        size = max(1, min(self.batch_size, _CALL_BYTES // per_image))
        for start in range(0, len(positions), size):
            yield positions[start : start + size]

    def _finish_shard(self, index: int) -> None:
        size, digest = self._writer.finish()
        self._writer = None
        part = {
            "shard": index,
            "file": f"{_shards.shard_name(index)}.npz",
            "bytes": size,
            "sha256": digest,
            "options": self.options.as_json(),
            "images": self._records,
        }
        _shards.write_json(self.shard_dir / f"{_shards.shard_name(index)}.json", part)

    def on_predict_end(self) -> None:
        if self._writer is not None:  # only when a run stops half-way through a shard
            self._writer.abandon()


def _key(position: int) -> str:
    return f"image_{position:05d}"


def _keep(batch):
    return batch


def _exit_with_parent() -> None:
    """End this process when the one that launched it is gone (a rank started by Lightning's
    script launcher would otherwise go on writing after its launcher was killed)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.2)
        os._exit(3)

    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


class ExtractionProgress(_Callback):
    """One progress bar on rank 0 (images, images/s, ETA) and the steady rate at the end.

    Rank 0 counts its own images and assumes the other ranks keep its pace (they run the same
    work); the summary printed after the run counts the manifest, so it is exact.
    """

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def on_predict_start(self, trainer, module) -> None:
        self.total = sum(len(paths) for _, paths in module.shards)
        self.start = time.perf_counter()
        self.images = self.warm_images = 0
        self.warm_start = self.start
        if trainer.global_rank == 0 and self.enabled:
            self.bar = Progress(self.total, "extract-dataset", "image")

    def on_predict_batch_end(self, trainer, module, outputs, batch, batch_index, dataloader_index=0) -> None:
        done = min(self.total, self.images + int(outputs) * trainer.world_size)
        if self.bar is not None:
            self.bar.update(done - self.images)
        self.images = done
        if batch_index == 0:
            self.warm_start, self.warm_images = time.perf_counter(), self.images

    def on_predict_end(self, trainer, module) -> None:
        if self.bar is not None:
            self.bar.close()
        now = time.perf_counter()
        steady = self.images > self.warm_images
        images = self.images - self.warm_images if steady else self.images
        seconds = now - (self.warm_start if steady else self.start)
        if self.bar is not None and seconds > 0:
            print(f"steady rate {images / seconds:.2f} images/s", file=sys.stderr)


@contextlib.contextmanager
def _quiet_lightning() -> Iterator[None]:
    """Lightning's start-up lines (accelerators found, tips, process-group banners) and its
    deprecation warnings are noise for a command line tool: keep warnings and errors only."""
    loggers = [logging.getLogger(name) for name in ("pytorch_lightning", "lightning_fabric", "lightning")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.WARNING)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=".*LeafSpec.*is deprecated", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*across ranks is zero.*")
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        try:
            yield
        finally:
            for logger, level in zip(loggers, levels):
                logger.setLevel(level)


# --- the run -------------------------------------------------------------------------------------------


def extract_dataset(
    root: str | Path,
    output_dir: str | Path,
    options: ExtractionOptions | None = None,
    batch_size: int = 8,
    num_workers: int = 2,
    trainer_options: dict | None = None,
    overwrite: bool = False,
    progress: bool = False,
) -> dict | None:
    """Extract the descriptors of every image under ``root`` into ``output_dir``; returns the manifest.

    Args:
        root: image folder (searched recursively; see ``find_images``).
        output_dir: where the shards, ``extraction.json`` and ``manifest.json`` go.
        options: what to compute and store (``ExtractionOptions``).
        batch_size: images per descriptor call (fewer when their float output would pass 512 MB).
        num_workers: DataLoader workers decoding images.
        trainer_options: ``pytorch_lightning.Trainer`` arguments (``accelerator``, ``devices``,
            ``num_nodes``, ``strategy``, ...).
        overwrite: when ``output_dir`` holds a run with other options, redo it with these instead
            of refusing.
        progress: show a progress bar (rank 0).

    Returns:
        The manifest on rank 0 (the process that merges it), ``None`` on the other ranks.

    Raises:
        ExtractionError: no such folder, no images, other options than the run being resumed,
            another run writing there; OSError: a write failed (no space, no permission).
    """
    if pl is None:
        raise ImportError("extract-dataset needs the lightning extra: pip install 'siftflow_nn[lightning]'")
    options = options or ExtractionOptions()
    check_positive_int(batch_size, "batch_size")
    root, output_dir = Path(root).absolute(), Path(output_dir)
    if not root.is_dir():
        raise ExtractionError(f"{root}: no such folder")
    paths, skipped = find_images(root, options.follow_symlinks)
    if not paths:
        raise ExtractionError(f"{root}: no image files found (extensions: {', '.join(IMAGE_EXTENSIONS)})")
    shard_dir = output_dir / _shards.SHARD_FOLDER
    shard_dir.mkdir(parents=True, exist_ok=True)
    shards = [(index, paths[start : start + options.shard_size]) for index, start in
              enumerate(range(0, len(paths), options.shard_size))]  # fmt: skip
    with _quiet_lightning():
        trainer = _trainer(trainer_options, progress)
        with _run_lock(output_dir, trainer.global_rank == 0):
            _check_recorded_options(output_dir, options, overwrite, trainer.global_rank == 0)
            todo = [(index, names) for index, names in shards if not _is_complete(shard_dir, index, names, options)]
            if todo:
                writer = DescriptorWriter(str(root), str(output_dir), todo, options, batch_size, num_workers)
                trainer.predict(writer, return_predictions=False)
            trainer.strategy.barrier()
            if trainer.global_rank != 0:
                return None
            return _merge_manifest(output_dir, root, shards, skipped, options)


def _trainer(trainer_options: dict | None, progress: bool) -> pl.Trainer:
    """A predict-only Trainer: no logger, checkpoints or Lightning bar (ours is quieter), and no
    distributed sampler (``DescriptorWriter`` shares the shards out itself)."""
    return pl.Trainer(
        logger=False,
        enable_checkpointing=False,
        enable_model_summary=False,
        enable_progress_bar=False,
        use_distributed_sampler=False,
        callbacks=[ExtractionProgress(progress)],
        **{"accelerator": "auto", "devices": 1, **(trainer_options or {})},
    )


@contextlib.contextmanager
def _run_lock(output_dir: Path, is_first_rank: bool) -> Iterator[None]:
    """Rank 0 holds ``OUT_DIR/.lock`` for the run, and clears what a killed run left behind."""
    if not is_first_rank:
        yield
        return
    with open(output_dir / ".lock", "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise ExtractionError(f"{output_dir}: another extract-dataset run is writing there") from None
        for folder, pattern in ((output_dir / _shards.SHARD_FOLDER, f"{_shards.TEMPORARY_PREFIX}*"),
                                (output_dir, f".*{_shards.TEMPORARY_SUFFIX}")):  # fmt: skip
            for leftover in folder.glob(pattern):
                leftover.unlink(missing_ok=True)
        yield


def _check_recorded_options(output_dir: Path, options: ExtractionOptions, overwrite: bool, is_first_rank: bool) -> None:
    """Refuse to resume a run made with other options (or, with ``overwrite``, start it afresh)."""
    recorded = _shards.read_json(output_dir / _shards.OPTIONS_FILE)
    if recorded is not None and recorded.get("options") != options.as_json():
        if not overwrite:
            differences = options.differences(recorded.get("options") or {})
            raise ExtractionError(
                f"{output_dir} holds a run with other options: {', '.join(differences)}; "
                f"use the same options to resume it, or --overwrite to redo it with these"
            )
        if is_first_rank:  # none of its shards can be kept
            for old in (output_dir / _shards.SHARD_FOLDER).glob("shard_*"):
                old.unlink()
    if is_first_rank and (recorded is None or recorded.get("options") != options.as_json()):
        _shards.write_json(
            output_dir / _shards.OPTIONS_FILE, {"version": _shards.FORMAT_VERSION, "options": options.as_json()}
        )


def _is_complete(shard_dir: Path, index: int, paths: list[str], options: ExtractionOptions) -> bool:
    """A shard is done when its part lists these images with these options and its file checks out."""
    part = _shards.read_json(shard_dir / f"{_shards.shard_name(index)}.json")
    if part is None or part.get("options") != options.as_json():
        return False
    if [entry.get("path") for entry in part.get("images", [])] != [_shards.json_path(path) for path in paths]:
        return False
    try:
        _shards.check_shard(shard_dir, part)
    except _shards.ShardError:
        return False
    return True


def _merge_manifest(
    output_dir: Path,
    root: Path,
    shards: list[tuple[int, list[str]]],
    skipped: dict[str, str],
    options: ExtractionOptions,
) -> dict:
    """Merge the shards' parts into ``manifest.json``; a part missing means a rank failed."""
    images = []
    for index, _ in shards:
        name = _shards.shard_name(index)
        part = _shards.read_json(output_dir / _shards.SHARD_FOLDER / f"{name}.json")
        if part is None:
            raise ExtractionError(f"{output_dir}: shard {name} was not written (a process failed: see above)")
        for entry in part["images"]:
            images.append({**entry, "shard": part["file"]} if entry["status"] == "ok" else entry)
    manifest = {
        "version": _shards.FORMAT_VERSION,
        "root": _shards.json_path(str(root)),
        "options": options.as_json(),
        "images": images,
        "skipped": [{"path": _shards.json_path(path), "reason": reason} for path, reason in sorted(skipped.items())],
    }
    _shards.write_json(output_dir / _shards.MANIFEST_FILE, manifest)
    return manifest


def summary(manifest: dict, seconds: float) -> str:
    """The closing line: counts from the manifest, so exact whatever the ranks did."""
    images = manifest["images"]
    failed = sum(entry["status"] == "failed" for entry in images)
    return (
        f"extracted {len(images) - failed} of {len(images)} images ({failed} failed, "
        f"{len(manifest['skipped'])} entries skipped) in {seconds:.1f} s"
    )
