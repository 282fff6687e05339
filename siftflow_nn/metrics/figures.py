"""Pictures of DocUNet results: a pair's SIFT flow over its scan, and one figure of every pair's scores.

``siftflow-nn docunet --figures DIR`` draws both. matplotlib (the ``plot`` extra) draws them on its
Agg canvas, without pyplot: no display is needed and no global backend is switched.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePath

import numpy as np
import torch

from siftflow_nn._checks import check_non_negative_int, check_non_negative_number, describe_value
from siftflow_nn.io import OutputError, atomic_path

__all__ = ["SUMMARY_COLUMNS", "flow_figure", "summary_figure"]

INSTALL_HINT = "pip install 'siftflow_nn[plot]'"

#: The per-pair CSV's score columns in the papers' order, each with (title, whether higher is better).
SUMMARY_COLUMNS = {
    "ms_ssim": ("MS-SSIM", True),
    "ld": ("LD", False),
    "li_d": ("Li-D", False),
    "ad": ("AD", False),
    "ed": ("ED", False),
    "cer": ("CER", False),
}

_DPI = 100
_COLORMAP = "YlOrRd"  # pale yellow to dark red: the eye goes to the most displaced parts
_OPACITY = 0.7  # of the colour at full length: the page's text still reads under it
_ARROWS_PER_SIDE = 24  # along the longer side; each arrow is its cell's mean flow
_MIN_CELL = 8  # flow pixels a side (16 of the scan's): on small scans, fewer arrows rather than a blur
_BAR, _WORST = "#4c72b0", "#c44e52"


def flow_figure(scan: torch.Tensor, flow: torch.Tensor, max_length: float | None = None) -> np.ndarray:
    """The scan with the SIFT flow of LD and AD over it: length as colour, direction as arrows.

    Where the unwarped photo is still displaced against the scan, the page is tinted from yellow
    to red (not at all where the flow is 0), and arrows on a sparse grid point to where that part
    of the page lies in the unwarped photo (the mean flow of their cell, drawn to scale with
    ``max_length``). A colour bar in the lower right states the lengths in the flow's pixels (half
    the benchmark's size: LD's and AD's unit) and their mean, LD.

    Args:
        scan: the scan as ``eval.m`` resized it, ``(H, W)``, ``(1, H, W)`` or ``(1, 1, H, W)`` uint8,
            or uint16 for a 16-bit scan (``docunet_evaluation``'s ``scan``, one pair of it).
        flow: its flow to the unwarped photo at half that size (``docunet_evaluation``'s ``flow``),
            float ``(2, ceil(H / 2), ceil(W / 2))``, or with a batch dimension of 1.
        max_length: the length, in the flow's pixels, of full colour; longer ones look the same
            (the colour bar then ends in an arrow). Default: the flow's 99th percentile, at least
            1, so that a few outliers at the page's edge do not wash the rest out. Give one value
            to compare the figures of many pairs.

    Returns:
        ``(H, W, 3)`` uint8 RGB picture, pixel for pixel over the scan.

    Raises:
        ImportError: matplotlib is not installed (the message says what to install).

    Example:
        >>> scan = torch.full((1, 1, 120, 90), 255, dtype=torch.uint8)
        >>> flow = torch.zeros(1, 2, 60, 45)
        >>> flow[:, 0, :, 20:] = 5.0  # the right half is 5 pixels off
        >>> picture = flow_figure(scan, flow)
        >>> picture.shape, picture.dtype, picture[10, 10].tolist()  # the still half stays white
        ((120, 90, 3), dtype('uint8'), [255, 255, 255])
    """
    matplotlib, Figure, FigureCanvasAgg = _matplotlib("flow_figure")
    gray = _gray_scan(scan)
    vectors = _half_size_flow(flow, gray.shape)
    length = np.hypot(vectors[0], vectors[1])
    if max_length is None:
        scale = max(1.0, float(np.percentile(length, 99)))
    else:
        scale = check_non_negative_number(max_length, "max_length")
        if scale == 0:
            raise ValueError("max_length must be positive (the length of full colour, in pixels), got 0")
    colormap = matplotlib.colormaps[_COLORMAP]
    height, width = gray.shape
    figure = Figure(figsize=(width / _DPI, height / _DPI), dpi=_DPI)
    canvas = FigureCanvasAgg(figure)
    axes = figure.add_axes((0, 0, 1, 1))
    axes.set_axis_off()
    axes.imshow(_tinted(gray, length, scale, colormap), interpolation="nearest")
    _draw_arrows(axes, vectors, scale)
    _draw_colour_bar(figure, matplotlib, colormap, scale, float(length.mean()), bool(length.max() > scale))
    axes.set_xlim(-0.5, width - 0.5)
    axes.set_ylim(height - 0.5, -0.5)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())[..., :3].copy()


def summary_figure(rows: Sequence[Mapping[str, object]], path: str | os.PathLike[str], worst: int = 3) -> Path:
    """One figure of every pair's scores: per metric, the pairs sorted from best to worst, the
    mean marked and the worst pairs named.

    Args:
        rows: one mapping per pair, keyed by the per-pair CSV's columns: ``result`` (the unwarped
            photo's name or path) and the scores ``ms_ssim``, ``ld``, ``li_d``, ``ad``, ``ed``,
            ``cer`` (numbers, or numeric strings as read back from the CSV; None, ``""`` or no key
            where not computed). Other keys are ignored. A metric no pair has gets no panel.
        path: the picture to write, atomically; its format from the extension (``.png``, ``.pdf``,
            ``.svg``, ...; PNG where there is none).
        worst: how many of the worst pairs each panel names (and colours red).

    Returns:
        ``path``, as a ``Path``.

    Raises:
        ImportError: matplotlib is not installed (the message says what to install).
        OutputError: ``path`` cannot be written, or has an extension matplotlib writes no format for.

    Example:
        >>> import tempfile
        >>> rows = [{"result": "1_1 copy_rec.png", "ms_ssim": 0.52, "ld": 7.9, "li_d": None},
        ...         {"result": "1_2 copy_rec.png", "ms_ssim": 0.47, "ld": 9.3, "li_d": None}]
        >>> with tempfile.TemporaryDirectory() as folder:
        ...     summary_figure(rows, Path(folder) / "summary.png").stat().st_size > 0
        True
    """
    matplotlib, Figure, FigureCanvasAgg = _matplotlib("summary_figure")
    worst = check_non_negative_int(worst, "worst")
    names, scores = _summary_table(rows)
    path = Path(path)
    figure = Figure(figsize=(6.4 * min(2, len(scores)), 0.4 + 2.8 * math.ceil(len(scores) / 2)), dpi=120)
    canvas = FigureCanvasAgg(figure)
    suffix = path.suffix[1:].lower() or "png"
    if suffix not in canvas.get_supported_filetypes():
        raise OutputError(f"{path}: matplotlib writes no picture format with the extension .{suffix}")
    panels = figure.subplots(math.ceil(len(scores) / 2), min(2, len(scores)), squeeze=False).ravel()
    for axes, (column, values) in zip(panels, scores.items()):
        _draw_scores(axes, matplotlib, column, names, values, worst)
    for axes in panels[len(scores) :]:
        axes.set_visible(False)
    figure.suptitle(f"per-pair scores of {len(names)} pairs", fontsize=10)
    figure.tight_layout()
    with atomic_path(path) as temporary:
        figure.savefig(temporary, format=suffix)
    return path


# --- the flow figure -----------------------------------------------------------------------------


def _tinted(gray: np.ndarray, length: np.ndarray, scale: float, colormap) -> np.ndarray:
    """``(H, W, 3)`` uint8: the scan under the length's colour, blended by ``length / scale`` (up
    to ``_OPACITY``): where the flow is 0 the scan is shown as it is."""
    fraction = np.clip(length / scale, 0, 1)
    weight = _OPACITY * fraction[..., None]
    colour = 255 * colormap(fraction)[..., :3]
    # flow pixel (i, j) stands for scan pixels 2i..2i+1, 2j..2j+1 (evalUnwarp's imresize(0.5))
    height, width = gray.shape
    weight, colour = (np.repeat(np.repeat(a, 2, axis=0), 2, axis=1)[:height, :width] for a in (weight, colour))
    return np.round(gray[..., None] * (1 - weight) + colour * weight).astype(np.uint8)


def _draw_arrows(axes, vectors: np.ndarray, scale: float) -> None:
    """An arrow per cell of a sparse grid: the cell's mean flow, ``scale`` drawn 0.9 cells long."""
    _, height, width = vectors.shape
    step = max(_MIN_CELL, math.ceil(max(height, width) / _ARROWS_PER_SIDE))
    rows, columns = height // step, width // step
    if rows == 0 or columns == 0:
        return
    cells = vectors[:, : rows * step, : columns * step].reshape(2, rows, step, columns, step).mean(axis=(2, 4))
    length = np.hypot(cells[0], cells[1])
    moving = length > 0  # no arrow (not even a dot) where the cell did not move
    shown = 0.9 * 2 * step / scale * np.minimum(1, scale / np.where(moving, length, 1))  # scan pixels per flow pixel
    # each cell's centre in the scan's pixels, rounded to a pixel's centre so that straight shafts are sharp
    y, x = np.meshgrid(2 * step * np.arange(rows) + step, 2 * step * np.arange(columns) + step, indexing="ij")
    u, v = cells[0] * shown, cells[1] * shown
    shaft = max(1.5, step / 8)  # in the scan's pixels, as the cell's 2 * step
    axes.quiver(x[moving], y[moving], u[moving], v[moving], angles="xy", scale_units="xy", scale=1, pivot="middle",
                units="dots", width=shaft, headwidth=4, headlength=5, headaxislength=4.5, minlength=0,
                color="black", edgecolor="white", linewidth=0.4)  # fmt: skip


def _draw_colour_bar(figure, matplotlib, colormap, scale: float, mean: float, beyond: bool) -> None:
    """A horizontal colour bar in the lower right, on a white box, in colours as the tint gives
    them on white paper."""
    width, height = figure.get_size_inches() * _DPI
    font = float(np.clip(width / 80, 4, 9))  # points
    line = font * _DPI / 72 / height  # a line of text, as a fraction of the figure's height
    fraction = np.linspace(0, 1, 256)[:, None]
    paper = matplotlib.colors.ListedColormap(1 - _OPACITY * fraction * (1 - colormap(fraction[:, 0])[:, :3]))
    bar_width = min(0.9, max(0.44, 18 * line * height / width))  # the label's 29 characters fit above it
    left = 0.96 - bar_width
    box = matplotlib.patches.Rectangle((left - 0.025, 0.2 * line), bar_width + 0.05, 5.8 * line)
    box.set(transform=figure.transFigure, facecolor="white", alpha=0.85, edgecolor="none", zorder=1)
    figure.patches.append(box)
    bar_axes = figure.add_axes((left, 2.0 * line, bar_width, 0.9 * line), zorder=2)
    mappable = matplotlib.cm.ScalarMappable(matplotlib.colors.Normalize(0, scale), paper)
    bar = figure.colorbar(mappable, cax=bar_axes, orientation="horizontal", extend="max" if beyond else "neither")
    bar.ax.tick_params(labelsize=font, length=2, pad=1)
    bar.outline.set_linewidth(0.5)
    bar.set_label(f"flow length, px at half size\nmean {mean:.2f} (LD)", fontsize=font, labelpad=2)
    bar_axes.xaxis.set_label_position("top")


def _gray_scan(scan) -> np.ndarray:
    """``(H, W)`` uint8 from one gray scan tensor."""
    if not isinstance(scan, torch.Tensor) or scan.dim() < 2 or scan.shape[:-2] not in ((), (1,), (1, 1)):
        raise ValueError(f"scan must be one gray image, (H, W), (1, H, W) or (1, 1, H, W), got {describe_value(scan)}")
    if 0 in scan.shape:
        raise ValueError(f"scan is empty: shape {tuple(scan.shape)}")
    if scan.device.type == "meta":
        raise ValueError("scan is on the meta device (a shape without pixels): move it to cpu or cuda first")
    if scan.dtype not in (torch.uint8, torch.uint16):
        raise TypeError(f"scan must be uint8 or uint16, as eval.m resized it (benchmark_pair's scan), got {scan.dtype}")
    gray = scan.reshape(scan.shape[-2:]).cpu().numpy()
    return gray if gray.dtype == np.uint8 else np.round(gray / 257).astype(np.uint8)  # 16-bit scans shown at 8


def _half_size_flow(flow, size: tuple[int, int]) -> np.ndarray:
    """``(2, h, w)`` float64 from a flow at half the scan's ``size`` (rounded up, as imresize)."""
    height, width = (-(-length // 2) for length in size)
    if (
        not isinstance(flow, torch.Tensor)
        or flow.dim() < 3
        or flow.shape[-3:] != (2, height, width)
        or flow.shape[:-3] not in ((), (1,))
    ):
        raise ValueError(
            f"flow must be the {size[0]} x {size[1]} scan's flow at half its size, (2, {height}, {width}) or "
            f"(1, 2, {height}, {width}), got {describe_value(flow)}"
        )
    if not flow.is_floating_point():
        raise TypeError(f"flow must be a floating-point tensor, got dtype {flow.dtype}")
    if flow.device.type == "meta":
        raise ValueError("flow is on the meta device (a shape without values): move it to cpu or cuda first")
    vectors = flow.detach().reshape(2, height, width).cpu().double().numpy()
    if not np.isfinite(vectors).all():
        raise ValueError("flow holds NaN or infinite values: a SIFT flow has neither")
    return vectors


# --- the summary figure --------------------------------------------------------------------------


def _draw_scores(axes, matplotlib, column: str, names: list[str], values: list[float | None], worst: int) -> None:
    """One panel: the pairs with this score as bars, best to worst; the mean; the worst named."""
    title, higher_is_better = SUMMARY_COLUMNS[column]
    scored = sorted(
        ((value, name) for value, name in zip(values, names) if value is not None), reverse=higher_is_better
    )
    count = len(scored)
    colours = [_BAR] * (count - min(worst, count)) + [_WORST] * min(worst, count)
    axes.bar(range(count), [value for value, _ in scored], width=0.8 if count <= 60 else 1.0, color=colours,
             linewidth=0)  # fmt: skip
    mean = sum(value for value, _ in scored) / count
    handles = [axes.axhline(mean, color="black", linestyle="--", linewidth=1, label=f"mean {mean:.4g}")]
    if worst:
        named = "\n".join(f"{_label(name)}  {value:.4g}" for value, name in reversed(scored[-worst:]))
        handles.append(matplotlib.patches.Patch(color=_WORST, label=f"worst:\n{named}"))
    axes.legend(handles=handles, loc="best", fontsize=7, framealpha=0.85)
    better = "higher" if higher_is_better else "lower"
    of = f"{count} pairs" if count == len(names) else f"{count} of {len(names)} pairs"
    axes.set_title(f"{title} ({better} is better), {of}", fontsize=9)
    axes.set_xlabel("pairs, best to worst", fontsize=8)
    axes.set_xticks([])
    axes.tick_params(labelsize=7)


def _summary_table(rows) -> tuple[list[str], dict[str, list[float | None]]]:
    """The pairs' names and, per score column some pair has, every pair's value (None: not computed)."""
    if isinstance(rows, (str, bytes, Mapping)) or not isinstance(rows, Sequence):
        raise TypeError(f"rows must be a list of mappings (one per pair), got {type(rows).__name__}")
    if not rows:
        raise ValueError("rows is empty: there is no pair to show")
    for index, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(f"rows[{index}] must be a mapping of the CSV's columns, got {type(row).__name__}")
    names = [str(row.get("result") or f"pair {index + 1}") for index, row in enumerate(rows)]
    names = [PurePath(name).name or name for name in names]
    scores = {
        column: [_score(row.get(column), index, column) for index, row in enumerate(rows)] for column in SUMMARY_COLUMNS
    }
    scores = {column: values for column, values in scores.items() if any(value is not None for value in values)}
    if not scores:
        raise ValueError(f"no row holds a score: rows need one of the keys {', '.join(SUMMARY_COLUMNS)}")
    return names, scores


def _score(value, index: int, column: str) -> float | None:
    """A finite float, or None where the value is missing (None or an empty CSV cell)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, (bool, np.bool_)):
        raise TypeError(f"rows[{index}][{column!r}] must be a number, got bool {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"rows[{index}][{column!r}] must be a number, None or empty, got {value!r}") from None
    if not math.isfinite(number):
        raise ValueError(f"rows[{index}][{column!r}] must be a finite number, got {value!r}")
    return number


def _label(name: str) -> str:
    """A file name as matplotlib can draw and any format can store it: bytes that were not UTF-8
    as ``\\xNN`` text, dollar signs escaped (they would start mathtext)."""
    try:
        name = name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:  # a lone surrogate that is no escaped byte
        name = name.encode("utf-8", "backslashreplace").decode("utf-8")
    return name.replace("$", r"\$")


def _matplotlib(caller: str):
    """matplotlib, its ``Figure`` and Agg canvas; a one-line ImportError saying how to get it."""
    try:
        import matplotlib
        import matplotlib.cm
        import matplotlib.colors
        import matplotlib.patches
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise ImportError(f"{caller} needs matplotlib: {INSTALL_HINT}") from None
    return matplotlib, Figure, FigureCanvasAgg
