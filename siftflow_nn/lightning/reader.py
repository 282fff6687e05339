"""``open_descriptors``: read what ``extract-dataset`` wrote, one image at a time.

A read-only mapping from an image's path (relative to the input folder, as the manifest spells
it) to its descriptor tensor, ``(D, H', W')`` in the stored dtype (uint8 or float16). Shards are
opened when first needed, checked against their manifest part (size, and SHA-256 unless
``verify=False``), and read one member at a time; the last shard stays open. No Lightning needed.

For example, after ``siftflow-nn extract-dataset images -o features``::

    store = open_descriptors("features")
    len(store), store.options["cell_size"], store["scene/0001.png"].shape  # 1200, [2], (128, 436, 1024)
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np
import torch

from siftflow_nn.lightning import _shards
from siftflow_nn.lightning._shards import ShardError

__all__ = ["DescriptorStore", "ShardError", "open_descriptors"]


class DescriptorStore(Mapping):
    """The descriptors of an ``extract-dataset`` output folder (see ``open_descriptors``).

    Attributes:
        root: the input folder of the run (absolute).
        options: the extraction options (cell size, step, boundary, bins, store, ...).
        failed: ``{path: reason}`` for the images that have no descriptor.
        skipped: ``{path: reason}`` for the input entries left out (links, unreadable folders).
    """

    def __init__(self, output_dir: str | Path, verify: bool = True) -> None:
        self.output_dir = Path(output_dir)
        manifest = _shards.read_json(self.output_dir / _shards.MANIFEST_FILE)
        if manifest is None or "images" not in manifest:
            raise FileNotFoundError(
                f"{self.output_dir}: no readable {_shards.MANIFEST_FILE} (not an extract-dataset output, "
                f"or a run that has not finished: run it again to complete it)"
            )
        if manifest.get("version") != _shards.FORMAT_VERSION:
            raise ValueError(f"{self.output_dir}: manifest version {manifest.get('version')}, this reader reads "
                             f"{_shards.FORMAT_VERSION}: extract again")  # fmt: skip
        self.root, self.options = manifest["root"], manifest["options"]
        self.verify = verify
        self._records = {entry["path"]: entry for entry in manifest["images"] if entry["status"] == "ok"}
        self.failed = {entry["path"]: entry["error"] for entry in manifest["images"] if entry["status"] != "ok"}
        self.skipped = {entry["path"]: entry["reason"] for entry in manifest.get("skipped", [])}
        self._open: tuple[str, np.lib.npyio.NpzFile] | None = None
        self._checked: set[str] = set()

    def __len__(self) -> int:
        return len(self._records)

    def __iter__(self) -> Iterator[str]:
        return iter(self._records)

    def __contains__(self, path: object) -> bool:
        return path in self._records

    def __getitem__(self, path: str) -> torch.Tensor:
        record = self._records.get(path)
        if record is None:
            if path in self.failed:
                raise KeyError(f"{path}: no descriptor, the image failed at extraction: {self.failed[path]}")
            if path in self.skipped:
                raise KeyError(f"{path}: no descriptor, the entry was skipped: {self.skipped[path]}")
            raise KeyError(f"{path}: not in this extraction (paths are relative to {self.root})")
        archive = self._shard(record["shard"])
        try:
            array = archive[record["key"]]
        except (KeyError, ValueError, OSError, zipfile.BadZipFile) as error:
            raise ShardError(f"{self.output_dir / _shards.SHARD_FOLDER / record['shard']}: cannot read "
                                     f"{record['key']} for {path} ({error})") from None  # fmt: skip
        if list(array.shape) != record["descriptor_shape"]:
            raise ShardError(f"{record['shard']}: {path} has shape {list(array.shape)}, its manifest "
                                     f"records {record['descriptor_shape']}")  # fmt: skip
        return torch.from_numpy(array)

    def _shard(self, name: str) -> np.lib.npyio.NpzFile:
        if self._open is not None and self._open[0] == name:
            return self._open[1]
        self.close()
        folder = self.output_dir / _shards.SHARD_FOLDER
        part = _shards.read_json(folder / f"{Path(name).stem}.json")
        if part is None:
            raise ShardError(f"{folder / name}: its manifest part {Path(name).stem}.json is missing")
        if name not in self._checked:
            _shards.check_shard(folder, part, self.verify)
            self._checked.add(name)
        try:
            archive = np.load(folder / name, allow_pickle=False)
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise ShardError(f"{folder / name}: not a readable shard ({error})") from None
        self._open = (name, archive)
        return archive

    def close(self) -> None:
        """Close the open shard file (the store stays usable: it reopens shards as needed)."""
        if self._open is not None:
            self._open[1].close()
            self._open = None

    def __enter__(self) -> DescriptorStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"DescriptorStore({str(self.output_dir)!r}: {len(self)} images, {len(self.failed)} failed, "
                f"options={self.options})")  # fmt: skip


def open_descriptors(output_dir: str | Path, verify: bool = True) -> DescriptorStore:
    """Open an ``extract-dataset`` output folder for reading: a mapping path -> ``(D, H', W')`` tensor.

    Args:
        output_dir: the folder ``extract-dataset -o`` wrote.
        verify: check each shard's SHA-256 against its manifest part when first opened (reads the
            shard once more); its size is always checked.

    Raises:
        FileNotFoundError: no manifest (not an output folder, or an unfinished run).
        KeyError: (on lookup) a path without a descriptor; the message says why.
        ShardError: (on lookup) a truncated, changed or missing shard.
    """
    return DescriptorStore(output_dir, verify)
