"""Tesseract, the OCR engine behind ED and CER: finding it, its version, and one page through it.

Tesseract is a system program, not a Python package: pytesseract (the ``ocr`` extra) only runs the
``tesseract`` command on a temporary copy of the image, as the original OCR scripts do. Both are
imported when first used, so the image metrics work without them. OCR numbers depend on
Tesseract's version and language data (DocGeoNet#3): report ``tesseract_version()`` with them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from PIL import Image

__all__ = ["TesseractNotFoundError", "run_tesseract", "tesseract_version"]

_INSTALL = (
    "install it with `apt-get install tesseract-ocr` (Debian/Ubuntu), `brew install tesseract` (macOS), "
    "`conda install -c conda-forge tesseract`, or the UB Mannheim installer (Windows), "
    "and the Python side with `pip install 'siftflow_nn[ocr]'`"
)


class TesseractNotFoundError(OSError):
    """Tesseract or pytesseract is missing; the message says which, and how to install it."""


def _pytesseract():
    """The pytesseract module, or a TesseractNotFoundError when the package is not installed."""
    try:
        import pytesseract
    except ImportError:
        raise TesseractNotFoundError(
            f"ED and CER need the Python package pytesseract, not installed: {_INSTALL}"
        ) from None
    return pytesseract


def _not_found(pytesseract) -> TesseractNotFoundError:
    command = pytesseract.pytesseract.tesseract_cmd
    return TesseractNotFoundError(
        f"ED and CER need Tesseract OCR, but the command {command!r} was not found: {_INSTALL}"
    )


def tesseract_version() -> str:
    """The version of the Tesseract that pytesseract runs, e.g. ``"5.3.0"``: print it with OCR numbers.

    Returns:
        The version as ``tesseract --version`` states it (without a ``-dev`` or build suffix).

    Raises:
        TesseractNotFoundError: pytesseract is not installed or the ``tesseract`` command is not found.

    Example:
        >>> tesseract_version()[0].isdigit()
        True
    """
    pytesseract = _pytesseract()
    try:
        return str(pytesseract.get_tesseract_version())
    except pytesseract.TesseractNotFoundError:
        raise _not_found(pytesseract) from None
    except SystemExit as error:
        # pytesseract exits the interpreter on a version it cannot parse (a wrong tesseract_cmd).
        raise RuntimeError(f"the Tesseract command gave no version pytesseract understands: {error}") from None


@contextmanager
def _single_threaded() -> Iterator[None]:
    """Tesseract on one OpenMP thread, unless the caller chose ``OMP_THREAD_LIMIT``.

    Its threads give the same text but make a page several times slower as soon as the cores are
    busy (1.3 s against 9.7 s a page on 2 shared cores): pages run in parallel processes instead.
    Only the environment that pytesseract hands to the subprocess changes, and only for the call.
    """
    if "OMP_THREAD_LIMIT" in os.environ:
        yield
        return
    os.environ["OMP_THREAD_LIMIT"] = "1"
    try:
        yield
    finally:
        os.environ.pop("OMP_THREAD_LIMIT", None)


def run_tesseract(image: Image.Image, config: str) -> str:
    """pytesseract's ``image_to_string(image, config=config)``: Tesseract's text output, as it is.

    Args:
        image: the page as the original scripts hand it over (pytesseract saves it in its own format,
            an alpha channel flattened onto white).
        config: Tesseract's command-line options, ``""`` for its defaults.

    Returns:
        The text as pytesseract returns it, whitespace and newlines included.

    Raises:
        TesseractNotFoundError: pytesseract is not installed or the ``tesseract`` command is not found.
    """
    pytesseract = _pytesseract()
    with _single_threaded():
        try:
            return pytesseract.image_to_string(image, config=config)
        except pytesseract.TesseractNotFoundError:
            raise _not_found(pytesseract) from None
