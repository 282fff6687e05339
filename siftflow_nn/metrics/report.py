"""A benchmark run's summary: the means, the papers' table, and the Markdown report.

Papers print one row per method with the columns MS-SSIM, LD, Li-D, AD, ED, CER (DocUNet and
DewarpNet the first three, PaperEdge and UVDoc AD, DocTr and its successors ED and CER); here the
same columns in that order, each the mean over the pairs where it was computed (ED and CER over
the OCR subset's results only), with the digits papers print.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from siftflow_nn.io import atomic_path

__all__ = ["COLUMN_TITLES", "Mean", "markdown_report", "mean_lines", "means", "paper_table", "write_report"]

#: Each score column's title in the papers' tables.
COLUMN_TITLES = {"ms_ssim": "MS-SSIM", "ld": "LD", "li_d": "Li-D", "ad": "AD", "ed": "ED", "cer": "CER"}
_TABLE_DIGITS = {"ms_ssim": 4, "ld": 2, "li_d": 2, "ad": 3, "ed": 2, "cer": 4}  # as the papers print them
_LINE_DIGITS = {"ms_ssim": 6, "ld": 4, "li_d": 4, "ad": 4, "ed": 2, "cer": 4}
_IMAGE, _OCR = ("ms_ssim", "ld", "li_d", "ad"), ("ed", "cer")

Scores = Mapping[str, float | None]


class Mean(NamedTuple):
    """A column's mean and the number of pairs it is over."""

    value: float
    count: int


def means(rows: Iterable[Scores]) -> dict[str, Mean]:
    """The mean of each column over the rows where it was computed (columns computed nowhere are left out).

    Example:
        >>> means([{"ld": 1.0, "ed": None}, {"ld": 2.0, "ed": 4.0}])
        {'ld': Mean(value=1.5, count=2), 'ed': Mean(value=4.0, count=1)}
    """
    values: dict[str, list[float]] = {}
    for row in rows:
        for name, value in row.items():
            if name in COLUMN_TITLES and value is not None:
                values.setdefault(name, []).append(float(value))
    return {name: Mean(math.fsum(column) / len(column), len(column)) for name, column in values.items()}


def mean_lines(averages: Mapping[str, Mean], pairs: int, ocr: str | None = None) -> list[str]:
    """The closing lines: every mean, the image metrics' over ``pairs`` pairs and the OCR's on a line of its own.

    Args:
        averages: ``means`` of the scored pairs.
        pairs: how many pairs the run expected (scored or not).
        ocr: how the OCR ran (protocol, subset, Tesseract's version), for its line.

    Example:
        >>> mean_lines({"ms_ssim": Mean(0.5, 2), "ld": Mean(7.25, 2)}, 3)
        ['mean over 2 of 3 pairs: MS-SSIM 0.500000  LD 7.2500']
    """
    image = [name for name in _IMAGE if name in averages]
    scored = max((averages[name].count for name in image), default=0)
    lines = [f"mean over {scored} of {pairs} pairs: {_values(averages, image, _LINE_DIGITS)}" if image else
             f"no pair scored (of {pairs})"]  # fmt: skip
    text = [name for name in _OCR if name in averages]
    if text:
        lines.append(f"mean over {averages[text[0]].count} OCR'd results: {_values(averages, text, _LINE_DIGITS)}"
                     + (f"  ({ocr})" if ocr else ""))  # fmt: skip
    return lines


def paper_table(averages: Mapping[str, Mean]) -> list[str]:
    """The means as a paper's results row, in its column order (``-``: not computed).

    Example:
        >>> print("\\n".join(paper_table({"ms_ssim": Mean(0.5, 2), "ld": Mean(7.25, 2)})))
        | MS-SSIM | LD   | Li-D | AD | ED | CER |
        | 0.5000  | 7.25 | -    | -  | -  | -   |
    """
    cells = [_cell(averages, name) for name in COLUMN_TITLES]
    widths = [max(len(title), len(cell)) for title, cell in zip(COLUMN_TITLES.values(), cells)]
    return [_table_line(COLUMN_TITLES.values(), widths), _table_line(cells, widths)]


def markdown_report(
    title: str, facts: Sequence[str], averages: Mapping[str, Mean], rows: Sequence[Mapping[str, object]]
) -> str:
    """A Markdown page: a title, what was scored (one bullet a fact), the papers' table, and each pair's scores.

    Args:
        title: the heading.
        facts: lines such as the layout line, the options, Tesseract's version.
        averages: ``means`` of the rows.
        rows: each pair's ``result``, ``scan`` and the score columns (None where not computed).

    Example:
        >>> print(markdown_report("Run", ["layout: a pairs list"], {"ld": Mean(2.0, 1)},
        ...                       [{"result": "a.png", "scan": "b.png", "ld": 2.0}]))
        # Run
        <BLANKLINE>
        - layout: a pairs list
        <BLANKLINE>
        | MS-SSIM | LD   | Li-D | AD | ED | CER |
        |---------|------|------|----|----|-----|
        | -       | 2.00 | -    | -  | -  | -   |
        <BLANKLINE>
        ## Each pair
        <BLANKLINE>
        | result | scan | MS-SSIM | LD | Li-D | AD | ED | CER |
        |---|---|---|---|---|---|---|---|
        | a.png | b.png |  | 2.0000 |  |  |  |  |
        <BLANKLINE>
    """
    head, values = paper_table(averages)
    rule = "|" + "|".join("-" * len(cell) for cell in head.split("|")[1:-1]) + "|"
    lines = [f"# {title}", "", *(f"- {fact}" for fact in facts), "", head, rule, values, "", "## Each pair", ""]
    lines.append("| result | scan | " + " | ".join(COLUMN_TITLES.values()) + " |")
    lines.append("|" + "---|" * (2 + len(COLUMN_TITLES)))
    for row in rows:
        scores = ["" if row.get(name) is None else f"{row[name]:.{_LINE_DIGITS[name]}f}" for name in COLUMN_TITLES]
        names = [_markdown_text(str(row["result"])), _markdown_text(str(row["scan"]))]
        lines.append("| " + " | ".join([*names, *scores]) + " |")
    return "\n".join(lines) + "\n"


def write_report(
    path: str | os.PathLike,
    title: str,
    facts: Sequence[str],
    averages: Mapping[str, Mean],
    rows: Sequence[Mapping[str, object]],
) -> None:
    """Write ``markdown_report(...)`` to ``path`` atomically (never half a file)."""
    with atomic_path(path) as temporary:
        temporary.write_text(markdown_report(title, facts, averages, rows), encoding="utf-8")


def _values(averages: Mapping[str, Mean], names: Sequence[str], digits: Mapping[str, int]) -> str:
    return "  ".join(f"{COLUMN_TITLES[name]} {averages[name].value:.{digits[name]}f}" for name in names)


def _cell(averages: Mapping[str, Mean], name: str) -> str:
    return f"{averages[name].value:.{_TABLE_DIGITS[name]}f}" if name in averages else "-"


def _table_line(cells: Iterable[str], widths: Sequence[int]) -> str:
    return "| " + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths)) + " |"


def _markdown_text(text: str) -> str:
    """A name in a table cell: its pipes escaped, its line breaks shown as ``\\n``."""
    return text.replace("|", "\\|").replace("\n", "\\n")
