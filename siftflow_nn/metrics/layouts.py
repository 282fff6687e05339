"""The benchmarks' folder layouts as data: which results, scans and photos a run expects.

Each public evaluation script reads a fixed set of file names: DocUNet's ``eval.m`` the scans
``scan/{k}.png`` (k = 1 .. 65) and two results a scan, DocGeoNet's DIR300 script ``gt/{k}.png``
and ``{k}_rec.png`` (k = 1 .. 300), UVDoc's ``evalScriptUVDoc.m`` ``texture_sample/%05d.png`` and
a result of the same name (k = 0 .. 49). A ``Layout`` holds those names; ``find_pairs`` lists what
a layout expects of two folders, what is there, what is missing, and what it ignores. A list of
pairs (a CSV file) serves any other benchmark: ``read_pairs_list``.

What is expected: every scan present in the scan folder, and every scan that a result present in
the result folder refers to, with all its results (a scan and its results are one unit: a
missing result or a missing scan is reported). Scans of the layout that are absent together with
all their results are not expected (a part of a benchmark can be scored; the layout line says how
many of its scans were found). Names are compared exactly (no pattern, no case folding), so a
stray image, a thumbnail or a name with a newline is never taken for a result: it is counted
among the ignored files.
"""

from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

from siftflow_nn.io import IMAGE_EXTENSIONS, printable_name

__all__ = [
    "LAYOUTS",
    "Benchmark",
    "Layout",
    "LayoutError",
    "Pair",
    "detect_layout",
    "find_pairs",
    "read_pairs_list",
]

PAIRS_LIST_COLUMNS = (("result", "scan"), ("result", "scan", "photo"))


class LayoutError(ValueError):
    """Folders or a pairs list that no layout fits, or that fit several: one line, saying what to choose."""


@dataclass(frozen=True)
class Layout:
    """How one benchmark names its files (``{k}``: the scan's number, ``{m}``: the photo's).

    Attributes:
        name: what ``--layout`` calls it.
        title: the benchmark's name, for messages and reports.
        scan: the scan's file name, e.g. ``"{k}.png"``.
        indices: the scans' numbers, in the evaluation script's order.
        photos: the photo numbers ``m`` of each scan (``(1,)`` where a scan has one photo).
        results: the result names in use, by method (the first is the default evaluation
            script's); a run uses one of them.
        photo: the distorted input photo's file name (what the ``uvdoc`` OCR protocol reads the size of).
        photo_folder: the photos' folder, beside the scan folder.
        rotated: ``(k, m)`` of photos rotated by 180 degrees against their scan.
        ocr_subsets: named subsets of scan numbers for OCR (besides ``all``); None: DocUNet's
            (``siftflow_nn.metrics.ocr.DOCUNET_SUBSETS``, each OCR protocol's own by default).
        source: where the names come from.
    """

    name: str
    title: str
    scan: str
    indices: tuple[int, ...]
    photos: tuple[int, ...]
    results: tuple[str, ...]
    photo: str
    photo_folder: str
    rotated: frozenset[tuple[int, int]] = frozenset()
    ocr_subsets: dict[str, tuple[int, ...]] | None = None
    source: str = ""

    def expected(self, results: str, index: int) -> list[tuple[int, str]]:
        """``(m, result name)`` of scan ``index``'s results named by the template ``results``."""
        return [(number, results.format(k=index, m=number)) for number in self.photos]

    def subsets(self) -> dict[str, tuple[int, ...]]:
        """The named OCR subsets of this benchmark's scans."""
        if self.ocr_subsets is not None:
            return self.ocr_subsets
        from siftflow_nn.metrics.ocr import DOCUNET_SUBSETS  # with the OCR protocols that define them

        return DOCUNET_SUBSETS

    def ocr_scans(self, subset: str | None, protocol_subset: str) -> tuple[int, ...]:
        """The scans whose results are OCR'd.

        Args:
            subset: ``"all"``, one of ``subsets()``, or scan numbers ``"N,N,..."``; None: the OCR
                protocol's own subset where it is one of this benchmark's, else this benchmark's
                only one (DIR300's, UVDoc's), else all.
            protocol_subset: the OCR protocol's subset (``OCRProtocol.subset``).

        Raises:
            LayoutError: an unknown name, or numbers that are not scans of this benchmark.

        Example:
            >>> LAYOUTS["uvdoc"].ocr_scans(None, "setting2")[:3], LAYOUTS["uvdoc"].ocr_scans("0,7", "setting2")
            ((1, 2, 3), (0, 7))
        """
        subsets = self.subsets()
        if subset is None:
            subset = (
                protocol_subset if protocol_subset in subsets else next(iter(subsets)) if len(subsets) == 1 else "all"
            )
        name = subset.strip().lower()
        if name == "all":
            return self.indices
        if name in subsets:
            return subsets[name]
        items = [item.strip() for item in name.split(",")]
        if not all(item.isascii() and item.isdigit() for item in items):
            names = ", ".join(["all", *subsets])
            raise LayoutError(f"--subset {subset!r}: {self.title}'s subsets are {names}, or scan numbers as '1,9,10'")
        numbers = sorted({int(item) for item in items})
        outside = [number for number in numbers if number not in self.indices]
        if outside:
            raise LayoutError(
                f"--subset {subset!r}: {outside[0]} is not a scan of {self.title} "
                f"(its scans are {self.indices[0]} to {self.indices[-1]})"
            )
        return tuple(numbers)


# The OCR subsets of the other benchmarks (DocUNet's are the OCR protocols': metrics/ocr.py).
# fmt: off
DIR300_OCR_SCANS = (  # DocGeoNet's OCR_eval_DIR300.py: its 90 images
    5, 7, 8, 10, 12, 27, 28, 29, 31, 36, 53, 55, 60, 61, 62, 63, 64, 65, 66, 67, 68, 69, 70, 71, 72, 73, 74, 85, 94,
    96, 103, 107, 108, 111, 115, 126, 128, 129, 130, 133, 135, 139, 140, 148, 149, 151, 159, 160, 161, 162, 163, 164,
    165, 166, 167, 169, 170, 173, 174, 177, 201, 202, 203, 205, 217, 218, 222, 223, 225, 227, 228, 237, 238, 239, 264,
    265, 266, 271, 273, 277, 278, 285, 286, 288, 291, 294, 295, 296, 298, 300,
)
UVDOC_OCR_SCANS = (1, 2, 3, 9, 10, 17, 18, 19, 21, 23, 29, 32, 33, 34, 36, 37, 41, 45, 46, 48)  # OCR_FILES_UVDOC
# fmt: on

#: The benchmarks' layouts by name (``"docunet"``, ``"dir300"``, ``"uvdoc"``).
LAYOUTS: dict[str, Layout] = {
    layout.name: layout
    for layout in (
        Layout(
            name="docunet",
            title="DocUNet",
            scan="{k}.png",
            indices=tuple(range(1, 66)),
            photos=(1, 2),
            # DocTr, DocScanner, DocGeoNet, DocTr++; UVDoc (docUnet_pred.py); DewarpNet, PaperEdge
            results=("{k}_{m} copy_rec.png", "{k}_{m}.png", "{k}_{m} copy.png"),
            photo="{k}_{m} copy.png",
            photo_folder="crop",
            rotated=frozenset({(64, 1), (64, 2)}),  # DocScanner's and DocGeoNet's READMEs
            source="Ma et al.'s eval.m: scan/{k}.png, crop/{k}_{m} copy.png, k = 1..65, m = 1, 2",
        ),
        Layout(
            name="dir300",
            title="DIR300",
            scan="{k}.png",
            indices=tuple(range(1, 301)),
            photos=(1,),
            results=("{k}_rec.png",),
            photo="{k}.png",
            photo_folder="dist",
            ocr_subsets={"docgeonet": DIR300_OCR_SCANS},
            source="DocGeoNet's ssim_ld_eval_DIR300.m: gt/{k}.png, dist/{k}.png, k = 1..300",
        ),
        Layout(
            name="uvdoc",
            title="UVDoc benchmark",
            scan="{k:05d}.png",
            indices=tuple(range(50)),
            photos=(1,),
            results=("{k:05d}.png",),
            photo="{k:05d}.png",
            photo_folder="warped_textures",
            ocr_subsets={"uvdoc": UVDOC_OCR_SCANS},
            source="UVDoc's evalScriptUVDoc.m: texture_sample/%05d.png, warped_textures/%05d.png, k = 0..49",
        ),
    )
}


class Pair(NamedTuple):
    """One result to score against its scan.

    ``key`` names the pair in messages and in the results file (the result's file name, or its
    path as a pairs list gives it), escaped where it is not UTF-8. ``index``, ``number``: the
    scan's and photo's numbers (None in a pairs list). ``rotated``: the result is to be turned by
    180 degrees before scoring. ``scan_resizes``: how many times the evaluation resizes the scan
    to the benchmark's area before this pair (1 in ``eval.m``; 2 for UVDoc's second photos).
    """

    key: str
    result: Path
    scan: Path
    photo: Path | None
    index: int | None = None
    number: int | None = None
    rotated: bool = False
    scan_resizes: int = 1


class Benchmark(NamedTuple):
    """What ``find_pairs`` found.

    ``pairs``: the expected pairs whose files are all there, in the evaluation script's order;
    ``missing``: ``(pair, the missing file)`` for the others; ``scans``: how many of the layout's
    scans are expected (``len(layout.indices)`` for the whole benchmark); ``ignored``: printable
    names of the images in the folders that the layout does not name.
    """

    layout: Layout | None
    results: str
    pairs: list[Pair]
    missing: list[tuple[Pair, Path]]
    scans: int
    ignored: list[str]

    @property
    def expected(self) -> int:
        return len(self.pairs) + len(self.missing)

    def describe(self) -> str:
        """The line that says which layout was used, what it expects and what was found."""
        if self.layout is None:
            return f"layout: a pairs list; {self.expected} pairs listed, {len(self.pairs)} found"
        layout = self.layout
        total = len(layout.indices) * len(layout.photos)
        return (
            f"layout: {layout.title} (results '{self.results}', scans '{layout.scan}'): {self.scans} of its "
            f"{len(layout.indices)} scans, {self.expected} pairs expected (the whole benchmark has {total}), "
            f"{len(self.pairs)} found"
        )


def detect_layout(rec_dir: str | os.PathLike, scan_dir: str | os.PathLike) -> tuple[Layout, str]:
    """The one layout and result naming whose names the folders hold.

    Raises:
        LayoutError: no layout's results are in ``rec_dir`` (with its scans in ``scan_dir``), or
            those of several are (the message names them and the options that choose).
    """
    results, scans = _names(Path(rec_dir)), _names(Path(scan_dir))
    found = []
    for layout in LAYOUTS.values():
        if not any(layout.scan.format(k=index) in scans for index in layout.indices):
            continue
        for template in layout.results:
            count = sum(name in results for index in layout.indices for _, name in layout.expected(template, index))
            if count and not (template == layout.scan and Path(rec_dir).resolve() == Path(scan_dir).resolve()):
                found.append((count, layout, template))
    if len(found) == 1:
        return found[0][1], found[0][2]
    if not found:
        known = "; ".join(f"{layout.title}: '{layout.scan}' and " + ", ".join(f"'{name}'" for name in layout.results)
                          for layout in LAYOUTS.values())  # fmt: skip
        raise LayoutError(
            f"{rec_dir} and {scan_dir} hold no results and scans named as a benchmark names them ({known}); "
            f"give --layout and --results TEMPLATE for other result names, or --pairs FILE"
        )
    candidates = ", ".join(f"{layout.name} with '{template}' ({count} results)" for count, layout, template in found)
    raise LayoutError(
        f"{rec_dir} holds results named as several layouts name them: {candidates}; choose one with --layout and "
        f"--results"
    )


def find_pairs(
    layout: Layout,
    results: str,
    rec_dir: str | os.PathLike,
    scan_dir: str | os.PathLike,
    photo_dir: str | os.PathLike | None = None,
    rotate: bool = False,
    scan_resize: str = "once",
) -> Benchmark:
    """The pairs ``layout`` expects of the folders (see the module's docstring for which).

    Args:
        layout: one of ``LAYOUTS``.
        results: the result names' template (one of ``layout.results``, or another with ``{k}``
            and, where a scan has several photos, ``{m}``).
        rec_dir, scan_dir: the results' and the scans' folders (they may be the same).
        photo_dir: the distorted photos' folder, or None where they are not needed.
        rotate: turn the results of ``layout.rotated`` back by 180 degrees before scoring.
        scan_resize: ``"once"`` as ``eval.m``; ``"uvdoc"`` as UVDoc's ``evalScript.m``, whose scan
            variable is overwritten in its loop: each photo after a scan's first is scored against
            the scan resized once more for each result scored before it.

    Returns:
        A ``Benchmark``.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("1.png", "1_1 copy_rec.png", "1_2 copy_rec.png", "2.png", "2_1 copy_rec.png", "thumbs.png"):
        ...     _ = (folder / name).write_bytes(b"")
        >>> found = find_pairs(LAYOUTS["docunet"], "{k}_{m} copy_rec.png", folder, folder)
        >>> [pair.key for pair in found.pairs], [path.name for _, path in found.missing], found.ignored
        (['1_1 copy_rec.png', '1_2 copy_rec.png', '2_1 copy_rec.png'], ['2_2 copy_rec.png'], ['thumbs.png'])
    """
    _check_template(layout, results)
    if scan_resize not in ("once", "uvdoc"):
        raise ValueError(f"scan_resize must be 'once' or 'uvdoc', got {scan_resize!r}")
    rec_dir, scan_dir = Path(rec_dir), Path(scan_dir)
    result_names, scan_names = _names(rec_dir), _names(scan_dir)
    pairs, missing, named, scans = [], [], set(), 0
    for index in layout.indices:
        scan_name = layout.scan.format(k=index)
        expected = layout.expected(results, index)
        if scan_name not in scan_names and not any(name in result_names for _, name in expected):
            continue
        scans += 1
        named.add((scan_dir, scan_name))
        scored_before = 0
        for number, name in expected:
            named.add((rec_dir, name))
            photo = Path(photo_dir) / layout.photo.format(k=index, m=number) if photo_dir is not None else None
            pair = Pair(
                key=printable_name(name),
                result=rec_dir / name,
                scan=scan_dir / scan_name,
                photo=photo,
                index=index,
                number=number,
                rotated=rotate and (index, number) in layout.rotated,
                scan_resizes=1 + scored_before if scan_resize == "uvdoc" else 1,
            )
            absent = [path for path, names in ((pair.scan, scan_names), (pair.result, result_names))
                      if path.name not in names]  # fmt: skip
            if absent:
                missing.append((pair, absent[0]))
            else:
                pairs.append(pair)
                scored_before += 1
    ignored = sorted(
        {printable_name(name) for folder, names in ((rec_dir, result_names), (scan_dir, scan_names))
         for name in names if (folder, name) not in named and _looks_like_an_image(name)}
    )  # fmt: skip
    return Benchmark(layout, results, pairs, missing, scans, ignored)


def read_pairs_list(path: str | os.PathLike) -> Benchmark:
    """The pairs a CSV file lists: a header ``result,scan`` or ``result,scan,photo``, then a row
    a pair; relative paths are taken from the file's folder.

    Raises:
        LayoutError: the file cannot be read, has another header, a row of another length, an
            empty name, or a result listed twice (the message names the line).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8", errors="surrogateescape") as handle:
            rows = list(csv.reader(handle))
    except (OSError, csv.Error) as error:
        raise LayoutError(f"{path}: cannot be read as a CSV pairs list ({error})") from None
    if not rows or tuple(rows[0]) not in PAIRS_LIST_COLUMNS:
        raise LayoutError(
            f"{path}: a pairs list starts with the header line 'result,scan' or 'result,scan,photo', "
            f"got {','.join(rows[0]) if rows else 'an empty file'!r}"
        )
    width, folder = len(rows[0]), path.parent
    pairs, missing, seen = [], [], set()
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != width or not all(row):
            raise LayoutError(f"{path}, line {line}: expected {width} non-empty names ({','.join(rows[0])}), got {row}")
        key = printable_name(row[0])
        if key in seen:
            raise LayoutError(f"{path}, line {line}: the result {key} is listed twice")
        seen.add(key)
        result, scan, *photo = (folder / name for name in row)
        pair = Pair(key, result, scan, photo[0] if photo else None)
        absent = [file for file in (scan, result) if not file.is_file()]
        if absent:
            missing.append((pair, absent[0]))
        else:
            pairs.append(pair)
    if not pairs and not missing:
        raise LayoutError(f"{path}: lists no pairs")
    scans = {pair.scan for pair in pairs} | {pair.scan for pair, _ in missing}
    return Benchmark(None, "", pairs, missing, len(scans), [])


def _check_template(layout: Layout, results: str) -> None:
    fields = {"k"} | ({"m"} if len(layout.photos) > 1 else set())
    try:
        names = {results.format(k=index, m=number) for index in layout.indices[:2] for number in layout.photos}
    except (KeyError, IndexError, ValueError) as error:
        raise LayoutError(
            f"the results template {results!r} is not valid: use {{k}} and {{m}} only ({error})"
        ) from None
    if len(names) != 2 * len(layout.photos) or not all(f"{{{name}" in results for name in fields):
        raise LayoutError(
            f"the results template {results!r} must name each result apart: "
            f"{' and '.join('{' + name + '}' for name in sorted(fields))} in it, as in {layout.results[0]!r}"
        )
    if Path(results.format(k=layout.indices[0], m=layout.photos[0])).name != results.format(
        k=layout.indices[0], m=layout.photos[0]
    ):
        raise LayoutError(f"the results template {results!r} must be a file name, without folders")


def _looks_like_an_image(name: str) -> bool:
    """Named as an image is (a trailing newline or space not hiding it)."""
    return Path(name.strip()).suffix.lower() in IMAGE_EXTENSIONS


def _names(folder: Path) -> frozenset[str]:
    """The entry names of ``folder``, listed once (a benchmark's folder holds hundreds)."""
    try:
        return frozenset(os.listdir(folder))
    except OSError as error:
        raise LayoutError(f"{folder}: cannot be listed ({error.strerror})") from None
