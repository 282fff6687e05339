"""The per-pair results file of a benchmark run: its rows, what each was computed from, and resuming.

One CSV row a pair, written (and flushed to disk) as soon as its scores exist, with the columns::

    result, scan, photo,                        the files' names (photo: where OCR read its size)
    ms_ssim, ld, li_d, ad, ed, cer,             the scores (empty where not computed)
    result_sha256, scan_sha256, photo_sha256,   the files' contents
    settings                                    how the row was computed (layout, options, metrics)

A second run with the same file resumes: a row counts for a pair only when it was computed from
the same files (SHA-256 of their contents), the same scan and photo names and the same settings;
rows computed otherwise are refused with one line (or scored again with ``overwrite``), so the
scores of one method's folder can never be taken for another's. A row is complete only when its
line ends: a row cut short by an interruption (inside its last number, say) is dropped and its
pair scored again. Names that are not UTF-8 are written escaped (``siftflow_nn.io.printable_name``).
The file is written only when there is something to write: a run with nothing left to score reads
it and leaves it alone (it may be read-only). A symbolic link is written through to its target.
"""

from __future__ import annotations

import csv
import hashlib
import io
import math
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from siftflow_nn.io import OutputError, atomic_path

__all__ = ["COLUMNS", "METRICS", "ResultsError", "ResultsFile", "Row", "Source", "file_sha256"]

#: The score columns of the per-pair CSV, in the papers' order.
METRICS = ("ms_ssim", "ld", "li_d", "ad", "ed", "cer")
#: The per-pair CSV's header (the files, the scores, the files' SHA-256 and the settings they were scored with).
COLUMNS = ("result", "scan", "photo", *METRICS, "result_sha256", "scan_sha256", "photo_sha256", "settings")
_EARLIER_COLUMNS = ("unwarped", "scan", "ms_ssim", "ld", "li_d")  # before rows said what they came from


class ResultsError(ValueError):
    """A results file that cannot be resumed as it is: one line saying why and what to do."""


class Row(NamedTuple):
    """One pair's row: names, scores (None where not computed), content hashes, settings."""

    result: str
    scan: str
    photo: str
    ms_ssim: float | None
    ld: float | None
    li_d: float | None
    ad: float | None
    ed: float | None
    cer: float | None
    result_sha256: str
    scan_sha256: str
    photo_sha256: str
    settings: str

    def scores(self) -> dict[str, float | None]:
        return {name: getattr(self, name) for name in METRICS}

    def cells(self) -> list[str]:
        return ["" if value is None else repr(float(value)) if name in METRICS else value
                for name, value in zip(COLUMNS, self)]  # fmt: skip


class Source(NamedTuple):
    """What a pair's row must have been computed from to be resumed: the names a row holds, the
    settings, and the files whose contents it must match (``photo`` None where none is read)."""

    key: str
    scan: str
    photo: str
    settings: str
    files: tuple[Path, Path, Path | None]


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's contents, read in blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            digest.update(block)
    return digest.hexdigest()


class ResultsFile:
    """A results CSV opened for a run: the rows it already holds for the run's pairs, and appending.

    Args:
        path: the CSV file (a symbolic link is followed: its target is read and written).
        sources: what each of the run's pairs must be computed from (``Source``), in run order.
        overwrite: score again the pairs whose rows were computed from other files or settings,
            and drop rows that are not this command's, instead of refusing.

    Raises:
        ResultsError: the file is not a results file of this command, or holds rows computed
            otherwise than this run would (and not ``overwrite``); the message is one line.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> _ = (folder / "r.png").write_bytes(b"result"), (folder / "s.png").write_bytes(b"scan")
        >>> source = Source("r.png", "s.png", "", "metrics=ms_ssim", (folder / "r.png", folder / "s.png", None))
        >>> results = ResultsFile(folder / "scores.csv", [source])
        >>> results.todo == [source], results.done
        (True, {})
        >>> results.append(Row("r.png", "s.png", "", 0.9, None, None, None, None, None,
        ...                    file_sha256(folder / "r.png"), file_sha256(folder / "s.png"), "", "metrics=ms_ssim"))
        >>> results.close()
        >>> again = ResultsFile(folder / "scores.csv", [source])
        >>> again.todo, again.done["r.png"].ms_ssim
        ([], 0.9)
    """

    def __init__(self, path: str | os.PathLike, sources: Sequence[Source], overwrite: bool = False) -> None:
        self.path = Path(path)
        self.target = Path(os.path.realpath(self.path))  # through symbolic links, to the file itself
        self.notes: list[str] = []  # what a resume did, one line each, for the user
        self._handle = self._writer = None
        if self.target.exists() and not self.target.is_file():
            raise ResultsError(f"{path} is not a regular file")
        rows, cut, bad, header = self._read() if self.target.exists() else ([], False, [], False)
        wanted = {source.key: source for source in sources}
        self.done: dict[str, Row] = {}
        keep, conflicts = [], []
        for row in rows:
            source = wanted.get(row.result)
            differences = _differences(row, source) if source is not None else []
            if differences:
                conflicts.append((row, differences))
            else:
                keep.append(row)
                if source is not None:
                    self.done[row.result] = row
        if (conflicts or bad) and not overwrite:
            what = (f"{len(conflicts)} of its rows were computed otherwise than this run's pairs would be "
                    f"(first: {conflicts[0][0].result}: {', '.join(conflicts[0][1])})" if conflicts else
                    f"line {bad[0]} is not a row this command writes (the file was edited?)")  # fmt: skip
            raise ResultsError(f"{path}: {what}; give another --csv file, or --overwrite to score those pairs again")
        if cut:
            self.notes.append(f"{path}: its last row was cut short (an interrupted run): that pair is scored again")
        if conflicts or bad:
            self.notes.append(f"{path}: {len(conflicts) + len(bad)} rows dropped (--overwrite): scored again")
        if keep and len(self.done) < len(keep):
            self.notes.append(f"{path}: {len(keep) - len(self.done)} of its rows are not pairs of this run: kept")
        self.todo = [source for source in sources if source.key not in self.done]
        self._keep = keep
        self._rewrite = cut or bool(conflicts or bad) or not header  # else rows are appended to it as it is

    def _read(self) -> tuple[list[Row], bool, list[int], bool]:
        """``(rows, last row cut short, line numbers of records that are not rows, the header is whole)``."""
        try:
            text = self.target.read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise ResultsError(
                f"{self.path} exists and is not a results file of this command (not UTF-8 text)"
            ) from None
        except OSError as error:
            raise ResultsError(f"{self.path} exists and cannot be read ({error.strerror})") from None
        header = ",".join(COLUMNS) + "\n"
        if header.startswith(text):  # empty, or the header itself cut short
            return [], False, [], False
        records = list(csv.reader(io.StringIO(text, newline="")))
        if tuple(records[0]) != COLUMNS:
            earlier = tuple(records[0]) == _EARLIER_COLUMNS
            raise ResultsError(
                f"{self.path} exists and is not a results file of this command "
                + (
                    "(an earlier version's, whose rows do not say what they were computed from)"
                    if earlier
                    else f"(its first line is not {header.strip()})"
                )  # fmt: skip
                + "; remove it or choose another"
            )
        cut = not text.endswith("\n")  # every row this command writes ends its line
        rows, bad, seen, line = [], [], set(), 2
        for record in records[1 : len(records) - cut]:
            row = _parse(record)
            if row is None or row.result in seen:
                bad.append(line)
            else:
                seen.add(row.result)
                rows.append(row)
            line += 1 + sum(cell.count("\n") for cell in record)
        return rows, cut, bad, True

    def append(self, row: Row) -> None:
        """Write one row and flush it to disk before returning (the file is opened on the first row).

        Raises:
            OutputError: the file cannot be written (the message names it and says why).
        """
        if self._handle is None:
            self._open()
        try:
            self._writer.writerow(row.cells())
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as error:
            raise OutputError(
                f"{self.path}: a row could not be written ({error.strerror}); the rows before it are kept"
            ) from None

    def prepare(self) -> None:
        """Open the file for the run's rows now (before any work), so that a file that cannot be
        written is reported before anything is computed; a run with nothing to score need not."""
        if self.todo:
            self._open()

    def _open(self) -> None:
        try:
            if self._rewrite:
                # the kept rows under a temporary name, renamed over the target: never half a file
                with (
                    atomic_path(self.target) as temporary,
                    open(temporary, "w", newline="", encoding="utf-8") as handle,
                ):
                    writer = csv.writer(handle, lineterminator="\n")
                    writer.writerow(COLUMNS)
                    writer.writerows(row.cells() for row in self._keep)
                self._rewrite = False
            self._handle = open(self.target, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed by close())
        except OutputError:
            raise
        except OSError as error:
            reason = error.strerror or str(error)
            raise OutputError(f"{self.path}: cannot be written ({reason}); nothing was scored") from None
        self._writer = csv.writer(self._handle, lineterminator="\n")

    def close(self) -> None:
        if self._handle is not None:
            self._handle.close()
            self._handle = None


def _parse(record: list[str]) -> Row | None:
    """A row from its CSV cells, or None when they are not a whole row of this command's."""
    if len(record) != len(COLUMNS):
        return None
    cells = dict(zip(COLUMNS, record))
    values: dict[str, object] = {}
    for name in METRICS:
        text = cells[name]
        try:
            value = float(text) if text else None
        except ValueError:
            return None
        if value is not None and not math.isfinite(value):
            return None
        values[name] = value
    for name in ("result_sha256", "scan_sha256", "photo_sha256"):
        digest = cells[name]
        if digest and (len(digest) != 64 or not all(c in "0123456789abcdef" for c in digest)):
            return None
    if not cells["result"] or not cells["scan"] or not cells["result_sha256"] or not cells["scan_sha256"]:
        return None
    return Row(**{**cells, **values})


def _differences(row: Row, source: Source) -> list[str]:
    """How a row differs from what the pair would now be computed from (names and settings
    first: hashing reads the files)."""
    differences = [
        f"{what} '{theirs}' -> '{ours}'"
        for what, theirs, ours in (("scan", row.scan, source.scan), ("photo", row.photo, source.photo),
                                   ("settings", row.settings, source.settings))
        if theirs != ours
    ]  # fmt: skip
    if differences:
        return differences
    result, scan, photo = source.files
    for what, recorded, path in (("result", row.result_sha256, result), ("scan", row.scan_sha256, scan),
                                 ("photo", row.photo_sha256, photo)):  # fmt: skip
        if path is not None and recorded != _sha256_or_none(path):
            differences.append(f"the {what} file's contents differ")
    return differences


def _sha256_or_none(path: Path) -> str | None:
    try:
        return file_sha256(path)
    except OSError:
        return None
