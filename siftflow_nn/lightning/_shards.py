"""The on-disk format of ``extract-dataset``, shared by its writer and its reader.

    OUT_DIR/extraction.json          the run's options (written first: a resume must match them)
    OUT_DIR/shards/shard_00012.npz   the descriptors, one ``.npy`` member per image (written by
                                     streaming, one batch at a time, so memory stays a batch's)
    OUT_DIR/shards/shard_00012.json  its manifest part: the options, the npz's size and SHA-256,
                                     and every image's record; written last (= the shard is done)
    OUT_DIR/manifest.json            all records, plus the skipped input entries

Files are written under a temporary name, flushed to disk (``fsync``), renamed, and the folder
flushed too, so that after a crash or a power loss a final name always holds complete contents.
"""

from __future__ import annotations

import hashlib
import json
import os
import zipfile
from pathlib import Path

import numpy as np

from siftflow_nn.io import printable_name

FORMAT_VERSION = 2
OPTIONS_FILE = "extraction.json"
MANIFEST_FILE = "manifest.json"
SHARD_FOLDER = "shards"
TEMPORARY_PREFIX = ".shard_"  # every temporary file the writer makes in the shard folder
TEMPORARY_SUFFIX = ".tmp"


class ShardError(ValueError):
    """A shard whose file is missing, truncated, or not the one its manifest part describes."""


def shard_name(index: int) -> str:
    return f"shard_{index:05d}"


def json_path(path: str) -> str:
    """A relative path as JSON can carry it: file names that are not UTF-8 (decoded by Python with
    lone surrogates, which strict JSON readers reject) get their odd bytes as ``\\xNN`` text."""
    return printable_name(path)


def sync_folder(folder: Path) -> None:
    """Flush a folder's entries (a rename) to disk; a no-op where folders cannot be opened."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def write_json(path: Path, content: object) -> None:
    """Write JSON durably: a temporary file, fsync, rename, fsync of the folder."""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # in shards/: ".shard_..."
    with open(temporary, "w", encoding="utf-8") as handle:
        json.dump(content, handle, indent=1, ensure_ascii=True)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)
    sync_folder(path.parent)


def read_json(path: Path) -> dict | None:
    """The JSON object in ``path``, or None when it is missing or unreadable."""
    try:
        content = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return content if isinstance(content, dict) else None


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class ShardWriter:
    """An ``.npz`` written one array at a time under a temporary name; ``finish`` makes it final."""

    def __init__(self, folder: Path, index: int) -> None:
        self.path = folder / f"{shard_name(index)}.npz"
        self.temporary = folder / f"{TEMPORARY_PREFIX}{index:05d}.{os.getpid()}.tmp.npz"
        self._zip = zipfile.ZipFile(self.temporary, "w", zipfile.ZIP_STORED, allowZip64=True)

    def add(self, key: str, array: np.ndarray) -> None:
        with self._zip.open(f"{key}.npy", "w", force_zip64=True) as member:
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)

    def finish(self) -> tuple[int, str]:
        """Close, flush to disk, rename to the final name; returns its size and SHA-256."""
        self._zip.close()
        with open(self.temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        size, digest = self.temporary.stat().st_size, sha256_of(self.temporary)
        os.replace(self.temporary, self.path)
        sync_folder(self.path.parent)
        return size, digest

    def abandon(self) -> None:
        self._zip.close()
        self.temporary.unlink(missing_ok=True)


def check_shard(folder: Path, part: dict, verify_checksum: bool = True) -> None:
    """Raise ShardError unless the shard's npz has the size (and SHA-256) its part records."""
    path = folder / part.get("file", "")
    try:
        size = path.stat().st_size
    except OSError:
        raise ShardError(f"{path}: missing (its manifest part lists {len(part.get('images', []))} images)") from None
    if size != part.get("bytes"):
        raise ShardError(f"{path}: {size} bytes where its manifest part records {part.get('bytes')} (truncated?)")
    if verify_checksum and sha256_of(path) != part.get("sha256"):
        raise ShardError(f"{path}: its SHA-256 is not the one its manifest part records (changed or corrupt)")
