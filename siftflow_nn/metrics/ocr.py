"""ED and CER: how well an unwarped page reads, by the two OCR protocols the papers use.

Both run Tesseract on the unwarped result and on the flat scan and compare the two texts, the
scan's being the reference; they differ in the details, and so in their numbers (mean ED 52.25
against 61.25 on ``tests/data/docunet_bench``):

- ``doctr``: fh2019ustc/DocTr's ``OCR_eval.py`` (also used by DocScanner and DocGeoNet).
  pytesseract with Tesseract's default options on both images as they are; ED is the Levenshtein
  distance of the two raw strings (whitespace and newlines count), CER = ED / len(scan's text);
  DocUNet's "Setting 1" subset by default.
- ``uvdoc``: tanguymagne/UVDoc's ``eval/ocr_eval/ocr_eval.py``. ``--oem 1`` (the LSTM engine);
  the result resized with Pillow's default filter to the size of its distorted input photo
  (``crop/{k}_{m} copy.png``) first; ED is ``Levenshtein.distance`` of the raw strings, CER is
  ``jiwer.cer(scan's text, result's text)``, which strips both strings' leading and trailing
  whitespace first; DocUNet's "Setting 2" (DewarpNet's 25 scans) by default.

A protocol is a record (``OCR_PROTOCOLS``) that the benchmark runner reads; the functions here know
nothing of folders. Each scan is OCR'd once (``ocr_scan``), each result once (``ocr_text``), then
``edit_scores`` compares them; none keeps state between calls, so they run as well in worker
processes. On ``tests/data/docunet_bench`` both protocols give the original scripts' ED and CER
exactly, with the same Tesseract (5.3.0): OCR numbers depend on Tesseract's version.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Literal, NamedTuple

import numpy as np
from PIL import Image

from siftflow_nn._checks import check_positive_int, describe_value
from siftflow_nn.metrics._tesseract import TesseractNotFoundError, run_tesseract, tesseract_version

__all__ = [
    "DOCUNET_SUBSETS",
    "OCR_PROTOCOLS",
    "OCRProtocol",
    "OCRScores",
    "TesseractNotFoundError",
    "edit_scores",
    "ocr_scan",
    "ocr_text",
    "parse_subset",
    "tesseract_version",
]

ImageLike = str | os.PathLike | Image.Image | np.ndarray

# fmt: off
#: The DocUNet scans whose two photos are OCR'd, by subset name. DocTr's list (its "Setting 1", 60 images) and
#: DewarpNet's (DocTr's "Setting 2", the list in UVDoc's ocr_files.txt, 50 images).
DOCUNET_SUBSETS: dict[str, tuple[int, ...]] = {
    "setting1": (1, 2, 3, 4, 5, 6, 7, 9, 10, 21, 22, 23, 24, 27, 30, 31, 32, 36, 38, 40, 41, 44, 45, 46, 47, 48, 50,
                 51, 52, 53),
    "setting2": (1, 9, 10, 12, 19, 20, 21, 22, 23, 24, 30, 31, 32, 34, 35, 36, 37, 38, 39, 40, 44, 45, 46, 47, 49),
}
# fmt: on


class OCRProtocol(NamedTuple):
    """One paper's OCR evaluation, as data: what the runner and ``edit_scores`` follow.

    Attributes:
        name: the key in ``OCR_PROTOCOLS``.
        tesseract_config: Tesseract's command-line options (``""``: its defaults).
        resize_to_photo: whether the unwarped result is resized to its distorted photo's size before
            OCR (the scan never is).
        cer: ``"raw"``: ED / len(reference) on the raw strings; ``"jiwer"``: ``jiwer.cer`` with its
            default normalisation (leading and trailing whitespace stripped, then characters).
        subset: the DocUNet subset the original script scores, a key of ``DOCUNET_SUBSETS``.
        source: the original script.
    """

    name: str
    tesseract_config: str
    resize_to_photo: bool
    cer: Literal["raw", "jiwer"]
    subset: str
    source: str


#: The two OCR protocols in use by name, ``"doctr"`` and ``"uvdoc"`` (see ``OCRProtocol``).
OCR_PROTOCOLS: dict[str, OCRProtocol] = {
    "doctr": OCRProtocol("doctr", "", False, "raw", "setting1", "fh2019ustc/DocTr OCR_eval.py"),
    "uvdoc": OCRProtocol("uvdoc", "--oem 1", True, "jiwer", "setting2", "tanguymagne/UVDoc eval/ocr_eval/ocr_eval.py"),
}


class OCRScores(NamedTuple):
    """One unwarped result's OCR scores against its scan."""

    ed: int
    cer: float


def _protocol(protocol: OCRProtocol | str) -> OCRProtocol:
    if isinstance(protocol, OCRProtocol):
        return protocol
    if isinstance(protocol, str) and protocol in OCR_PROTOCOLS:
        return OCR_PROTOCOLS[protocol]
    raise ValueError(
        f"protocol must be one of {', '.join(map(repr, OCR_PROTOCOLS))} or an OCRProtocol, got {protocol!r}"
    )


def parse_subset(text: str) -> tuple[int, ...] | None:
    """The scans a ``--subset`` value names: ``all``, a ``DOCUNET_SUBSETS`` name, or ``N,N,...``.

    Args:
        text: ``"all"`` (every scan), ``"setting1"``, ``"setting2"``, or scan numbers separated by
            commas (positive, each once; spaces allowed).

    Returns:
        The scan numbers in ascending order, or None for ``all``.

    Example:
        >>> parse_subset("setting2")[:4]
        (1, 9, 10, 12)
        >>> parse_subset("12, 3"), parse_subset("all")
        ((3, 12), None)
    """
    if not isinstance(text, str):
        raise TypeError(f"subset must be a str, got {describe_value(text)}")
    name = text.strip().lower()
    if name == "all":
        return None
    if name in DOCUNET_SUBSETS:
        return DOCUNET_SUBSETS[name]
    expected = f"'all', {', '.join(map(repr, DOCUNET_SUBSETS))} or scan numbers such as '1,9,10'"
    items = [item.strip() for item in name.split(",")]
    bad = [item for item in items if not (item.isascii() and item.isdigit() and int(item) > 0)]
    if bad:
        raise ValueError(f"subset must be {expected}, got {text!r} ({bad[0]!r} is not a positive scan number)")
    numbers = [int(item) for item in items]
    repeated = sorted({n for n in numbers if numbers.count(n) > 1})
    if repeated:
        raise ValueError(f"subset must name each scan once, got {text!r} (repeated: {', '.join(map(str, repeated))})")
    return tuple(sorted(numbers))


def _check_photo_size(photo_size: Sequence[int]) -> tuple[int, int]:
    if not isinstance(photo_size, Sequence) or isinstance(photo_size, str) or len(photo_size) != 2:
        raise ValueError(
            f"photo_size must be the photo's (width, height), got {describe_value(photo_size)} {photo_size!r}"
        )
    width = check_positive_int(photo_size[0], "photo_size[0] (width)")
    return width, check_positive_int(photo_size[1], "photo_size[1] (height)")


@contextmanager
def _opened(image: ImageLike, name: str) -> Iterator[Image.Image]:
    """``image`` as the original scripts hand it to pytesseract: a file as ``Image.open`` reads it
    (its mode and format kept), an array through ``Image.fromarray``."""
    if isinstance(image, Image.Image):
        yield image
    elif isinstance(image, (str, os.PathLike)):
        with Image.open(image) as opened:
            yield opened
    elif isinstance(image, np.ndarray):
        if image.dtype != np.uint8:
            raise TypeError(f"{name} must be a uint8 array, got {describe_value(image)}")
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] in (1, 3, 4))) or 0 in image.shape[:2]:
            raise ValueError(
                f"{name} must be an H x W or H x W x C array (C = 1, 3 or 4, H, W > 0), got {describe_value(image)}"
            )
        yield Image.fromarray(image[..., 0] if image.ndim == 3 and image.shape[2] == 1 else image)
    else:
        raise TypeError(f"{name} must be a path, a PIL image or a uint8 array, got {describe_value(image)}")


def ocr_scan(scan: ImageLike, protocol: OCRProtocol | str) -> str:
    """The reference text: Tesseract's reading of the flat scan, as ``protocol`` runs it.

    Args:
        scan: a path, a PIL image, or an ``(H, W)`` / ``(H, W, C)`` uint8 array (C = 1, 3 or 4).
        protocol: ``"doctr"``, ``"uvdoc"`` or an ``OCRProtocol``.

    Returns:
        The text as Tesseract gives it, whitespace and newlines included.

    Raises:
        TesseractNotFoundError: pytesseract or the ``tesseract`` command is missing.

    Example:
        >>> ocr_scan(np.full((60, 80), 255, np.uint8), "doctr")  # a blank page
        ''
    """
    protocol = _protocol(protocol)
    with _opened(scan, "scan") as image:
        return run_tesseract(image, protocol.tesseract_config)


def ocr_text(image: ImageLike, protocol: OCRProtocol | str, photo_size: Sequence[int] | None = None) -> str:
    """An unwarped result's text, as ``protocol`` reads it (resized to its photo's size by ``uvdoc``).

    Args:
        image: a path, a PIL image, or an ``(H, W)`` / ``(H, W, C)`` uint8 array (C = 1, 3 or 4).
        protocol: ``"doctr"``, ``"uvdoc"`` or an ``OCRProtocol``.
        photo_size: the distorted input photo's ``(width, height)``, as ``Image.open(photo).size``
            gives it; needed by protocols that resize (``uvdoc``), unused by the others.

    Returns:
        The text as Tesseract gives it, whitespace and newlines included.

    Raises:
        ValueError: ``photo_size`` is missing where the protocol resizes, or not two positive ints.
        TesseractNotFoundError: pytesseract or the ``tesseract`` command is missing.

    Example:
        >>> blank = np.full((60, 80, 3), 255, np.uint8)
        >>> ocr_text(blank, "doctr"), ocr_text(blank, "uvdoc", photo_size=(100, 130))
        ('', '')
    """
    protocol = _protocol(protocol)
    if photo_size is not None:
        photo_size = _check_photo_size(photo_size)
    elif protocol.resize_to_photo:
        raise ValueError(
            f"photo_size is needed by the {protocol.name!r} protocol, which resizes the result to its "
            "distorted photo's (width, height) before OCR, e.g. Image.open('crop/1_1 copy.png').size"
        )
    with _opened(image, "image") as opened:
        if protocol.resize_to_photo:
            # Pillow's default filter, as UVDoc calls it: bicubic (nearest for modes "1" and "P").
            opened = opened.resize(photo_size)
        return run_tesseract(opened, protocol.tesseract_config)


def edit_scores(text: str, reference: str, protocol: OCRProtocol | str) -> OCRScores:
    """ED and CER of a result's OCR text against its scan's, by ``protocol``'s definitions.

    ED is the Levenshtein distance of the raw strings (every character counts, whitespace and
    newlines too) in both protocols; CER is ED / len(reference) for ``doctr`` and ``jiwer.cer`` for
    ``uvdoc`` (the same distance after stripping both strings' leading and trailing whitespace,
    over the stripped reference's length).

    Args:
        text: the unwarped result's OCR text (``ocr_text``).
        reference: the scan's (``ocr_scan``); it must hold text, since CER divides by its length.
        protocol: ``"doctr"``, ``"uvdoc"`` or an ``OCRProtocol``.

    Returns:
        ``OCRScores(ed, cer)``.

    Example:
        >>> edit_scores("the cat\\n", "the hat\\n", "doctr")
        OCRScores(ed=1, cer=0.125)
        >>> edit_scores("the cat\\n", "the hat", "uvdoc")  # jiwer drops the newline before its CER
        OCRScores(ed=2, cer=0.14285714285714285)
    """
    protocol = _protocol(protocol)
    for name, value in (("text", text), ("reference", reference)):
        if not isinstance(value, str):
            raise TypeError(f"{name} must be a str (an OCR text), got {describe_value(value)}")
    if protocol.cer not in ("raw", "jiwer"):
        raise ValueError(f"protocol.cer must be 'raw' or 'jiwer', got {protocol.cer!r}")
    if not (reference.strip() if protocol.cer == "jiwer" else reference):
        raise ValueError(
            f"reference (the scan's OCR text) must hold text, got {reference!r}: the CER divides by its "
            "length (did Tesseract find no text on the scan?)"
        )
    try:
        import Levenshtein
    except ImportError:
        raise ImportError("edit_scores needs the Python package Levenshtein: pip install 'siftflow_nn[ocr]'") from None
    distance = Levenshtein.distance(text, reference)
    if protocol.cer == "raw":
        return OCRScores(distance, distance / len(reference))
    try:
        import jiwer
    except ImportError:
        raise ImportError("the jiwer CER needs the Python package jiwer: pip install 'siftflow_nn[ocr]'") from None
    return OCRScores(distance, float(jiwer.cer(reference, text)))
