"""Figures for the benchmark scripts' ``--plot FILE``, drawn from the very rows a script prints.

A script that prints a table with ``print_table(title, header, rows)`` draws it with one more call,
``plot_table(path, header, rows, y=..., x=..., ...)``, so the figure and the table come from the
same measurements and cannot disagree. ``add_plot_argument`` gives the script its ``--plot FILE``
option, checked before any measuring starts (the format, the folder, matplotlib itself), so a bad
path fails at once instead of after minutes of benchmarking.

Two kinds of figure cover the benchmarks' tables:

- ``kind="line"``: the ``y`` columns against the numeric column ``x`` (time against batch size);
- ``kind="bar"``: grouped bars, one group per category, one bar per series; the categories are the
  values of column ``x``, or the ``y`` columns themselves when ``x`` is ``None`` (seconds per
  pyramid level, one column per level).

Series are told apart by the values of the ``series`` column(s) (and by the ``y`` column when
there are several); ``panel`` column(s) give one subplot per value. Cells that hold no number
(``""``, ``None``, NaN, a word) are left out, so sparse tables (a peer measured at some batch sizes
only) plot as they print. Files are written atomically (``siftflow_nn.io.atomic_path``); SVG output
carries no date and fixed ids, so a figure redrawn from the same numbers is the same file.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from pathlib import Path

FORMATS = (".svg", ".png", ".pdf")
INSTALL_HINT = "pip install 'siftflow_nn[docs]'"

Columns = str | Sequence[str]


def figure_path(text: str) -> Path:
    """``--plot``'s argument type: a path whose extension names a format and whose folder is writable.

    Raises:
        argparse.ArgumentTypeError: the extension is not one of ``FORMATS``, the folder does not
            exist or cannot be written, or matplotlib is not installed.
    """
    path = Path(text)
    if path.suffix.lower() not in FORMATS:
        raise argparse.ArgumentTypeError(f"{text}: a figure must end in {', '.join(FORMATS)}, got {path.suffix!r}")
    folder = path.parent
    if not folder.is_dir():
        raise argparse.ArgumentTypeError(f"{text}: the folder {folder} does not exist")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise argparse.ArgumentTypeError(f"{text}: the folder {folder} cannot be written")
    if path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is a folder")
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise argparse.ArgumentTypeError(f"--plot needs matplotlib: {INSTALL_HINT}") from None
    return path


def add_plot_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--plot FILE`` (default ``None``: no figure) to a benchmark's argument parser."""
    parser.add_argument(
        "--plot",
        type=figure_path,
        metavar="FILE",
        help=f"also draw the table as a figure ({', '.join(FORMATS)}; needs matplotlib: {INSTALL_HINT})",
    )


def plot_table(
    path: str | os.PathLike[str],
    header: Sequence[str],
    rows: Sequence[Sequence[object]],
    *,
    y: Columns,
    x: str | None = None,
    series: Columns = (),
    panel: Columns = (),
    errors: Columns = (),
    kind: str = "line",
    title: str = "",
    y_label: str = "",
    log_y: bool = False,
) -> None:
    """Draw rows of a printed table as a figure and write it to ``path`` (format from the extension).

    Args:
        path: the figure file, ``.svg``, ``.png`` or ``.pdf``.
        header: the table's column names, as printed.
        rows: the table's rows, as printed (numbers, or text that reads as one).
        y: the column(s) whose values are drawn.
        x: the column of x positions (``kind="line"``, numeric) or of categories (``kind="bar"``);
            ``None`` with ``kind="bar"``: the ``y`` columns are the categories.
        series: column(s) whose values tell series apart (one line, or one bar per group, each).
        panel: column(s) whose values get a subplot each, side by side.
        errors: column(s), one per ``y`` column, of error-bar half-lengths (e.g. a spread over seeds).
        kind: ``"line"`` or ``"bar"``.
        title: the figure's title.
        y_label: the y axis's label (the x axis is labelled with ``x``).
        log_y: a logarithmic y axis (times that span decades).

    Raises:
        ValueError: a named column is not in ``header``, ``kind`` is unknown, ``x`` is missing for
            lines, ``errors`` does not pair with ``y``, or no cell of ``y`` holds a number.
    """
    ys, series, panel = _names(y), _names(series), _names(panel)
    errors = _names(errors)
    if kind not in ("line", "bar"):
        raise ValueError(f"kind must be 'line' or 'bar', got {kind!r}")
    if kind == "line" and x is None:
        raise ValueError("kind='line' needs x, the column of x positions")
    if errors and len(errors) != len(ys):
        raise ValueError(f"errors must name one column per y column ({len(ys)}), got {len(errors)}")
    index = {name: position for position, name in enumerate(header)}
    for name in [*ys, *series, *panel, *errors, *([x] if x else [])]:
        if name not in index:
            raise ValueError(f"column {name!r} is not in the table's header {list(header)}")

    # panel -> series label -> category or x -> (value, error)
    points: dict[str, dict[str, dict[object, tuple[float, float]]]] = {}
    for row in rows:
        panel_label = ", ".join(f"{name} {row[index[name]]}" for name in panel)
        for position, column in enumerate(ys):
            value = _number(row[index[column]])
            if value is None:
                continue
            error = _number(row[index[errors[position]]]) if errors else None
            parts = [_label(row, series, index)] + ([column] if len(ys) > 1 else [])
            key = _number(row[index[x]]) if kind == "line" else (row[index[x]] if x else column)
            if key is None:
                continue
            label = ", ".join(part for part in parts if part)
            points.setdefault(panel_label, {}).setdefault(label, {})[key] = (value, error or 0.0)
    if not points:
        raise ValueError(f"no cell of {ys} holds a number: nothing to draw")
    _draw(Path(path), points, kind, x or "", title, y_label, log_y)


def _names(columns: Columns) -> list[str]:
    return [columns] if isinstance(columns, str) else list(columns)


def _label(row: Sequence[object], columns: list[str], index: dict[str, int]) -> str:
    return ", ".join(str(row[index[name]]) for name in columns)


def _number(cell: object) -> float | None:
    if isinstance(cell, bool) or cell is None:
        return None
    try:
        value = float(cell)  # numbers, and the formatted strings some tables hold ("0.399")
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def _draw(path: Path, points: dict, kind: str, x_label: str, title: str, y_label: str, log_y: bool) -> None:
    import matplotlib

    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    from siftflow_nn.io import atomic_path

    labels = list(dict.fromkeys(label for panel in points.values() for label in panel))
    colours = {label: f"C{number % 10}" for number, label in enumerate(labels)}
    figure, axes = plt.subplots(
        1, len(points), figsize=(4.2 * len(points) + 1.2, 3.6), squeeze=False, sharey=True, layout="constrained"
    )
    for axis, (panel_label, panel) in zip(axes[0], points.items()):
        if kind == "line":
            for label, values in panel.items():
                xs = sorted(values)
                axis.errorbar(
                    xs,
                    [values[k][0] for k in xs],
                    yerr=[values[k][1] for k in xs] if any(values[k][1] for k in xs) else None,
                    marker="o",
                    capsize=3,
                    color=colours[label],
                )
            axis.set_xticks(sorted({k for values in panel.values() for k in values}))
        else:
            categories = list(dict.fromkeys(k for values in panel.values() for k in values))
            width = 0.8 / len(panel)
            for number, (label, values) in enumerate(panel.items()):
                at = [i for i, k in enumerate(categories) if k in values]
                cells = [values[categories[i]] for i in at]
                axis.bar(
                    [i - 0.4 + width * (number + 0.5) for i in at],
                    [cell[0] for cell in cells],
                    width,
                    yerr=[cell[1] for cell in cells] if any(cell[1] for cell in cells) else None,
                    capsize=3,
                    color=colours[label],
                )
            axis.set_xticks(
                range(len(categories)), [str(k) for k in categories], rotation=20 if len(categories) > 4 else 0
            )
        if log_y:
            axis.set_yscale("log")
        axis.set_title(panel_label, fontsize="medium")
        axis.set_xlabel(x_label)
        axis.grid(axis="y", alpha=0.3)
    axes[0][0].set_ylabel(y_label)
    # One legend for all panels, every series once, in the order the table first shows them.
    if kind == "line":
        handles = [Line2D([], [], color=colours[label], marker="o") for label in labels]
    else:
        handles = [Patch(color=colours[label]) for label in labels]
    figure.legend(handles, labels, loc="outside lower center", ncols=min(len(labels), 4), fontsize="small")
    if title:
        figure.suptitle(title, fontsize="medium")
    # No date in SVG and PDF files, and fixed SVG ids: the same numbers give the same file.
    metadata = {".svg": {"Date": None}, ".pdf": {"CreationDate": None}}.get(path.suffix.lower(), {})
    try:
        with atomic_path(path) as temporary, plt.rc_context({"svg.hashsalt": "siftflow_nn"}):
            figure.savefig(temporary, format=path.suffix.lower()[1:], metadata=metadata, dpi=120)
    finally:
        plt.close(figure)
