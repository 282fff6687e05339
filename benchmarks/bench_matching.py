"""SIFT flow matching: ours beside Ce Liu's original C++, and the accuracy of every matcher.

Part 1 (needs the original, built by ``../shared/bpflow/build.sh``; pass its binary with
``--original``): the MPI Sintel alley_1 pair (frames 1 and 2, 436 x 1024, and both frames halved),
the same uint8 descriptors (cell size 3) fed to both, the demo's parameters. Ours writes its
pyramid into the original's job folder (``--pyramid files``), so both solve the very same levels
and their energies can be compared exactly. Per level: seconds (the original's level time of its
mex call; ours includes building our pyramid, which the original does in MATLAB, untimed) and the
final energy. One thread each (``OMP_NUM_THREADS=1``, ``torch.set_num_threads(1)``), then ours on
two, then ours given the descriptors as ``SIFTFlowDescriptor`` returns them (float, channels first)
and as uint8 channels first (``match`` converts them: what that costs, also timed apart, as a share
of the match); every figure is the median of ``--repeats`` runs, the original's and ours in the same
run. ``--plot FILE``: the seconds per level as a figure.

Part 2: end-point error and time of ``local_match`` and ``SIFTFlow`` on a 436 x 1024 synthetic
pair with known flow (a textured image and a smooth random warp of up to 6 px, noise 0.05), EPE
over the interior (10 px margin).

    python benchmarks/bench_matching.py [--original BUILD/bpflow_c2f] [--repeats 3] [--device cpu] [--plot FILE]
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import SINTEL, median_ms, peak_added_bytes, print_table, torch_threads
from _plot import add_plot_argument, plot_table

from siftflow_nn import SIFTFlow, SIFTFlowDescriptor, end_point_error, local_match, to_uint8
from siftflow_nn.io import read_image
from siftflow_nn.synthetic import synthetic_pair

DEMO = dict(alpha=2 * 255, d=40 * 255, gamma=0.005 * 255, num_levels=4, window=2, top_window=10)


def sintel_descriptors(half: bool) -> torch.Tensor:
    """``(2, 128, H, W)`` uint8 descriptors (cell size 3) of Sintel alley_1 frames 1 and 2."""
    images = torch.stack([read_image(SINTEL / f"frame_000{frame}.png") for frame in (1, 2)])
    if half:  # a 2 x 2 box reduction, as make_job.py's --half
        images = torch.nn.functional.avg_pool2d(images, 2)
    with torch.no_grad():  # channels last, as SIFTFlow.forward hands them to match()
        return to_uint8(SIFTFlowDescriptor(cell_size=3)(images)).contiguous(memory_format=torch.channels_last)


def write_job(job: Path, pyramids: list[list[np.ndarray]]) -> None:
    """The original's job folder: every level's descriptors and meta.txt (see ../shared/bpflow)."""
    job.mkdir(parents=True, exist_ok=True)
    levels = len(pyramids[0])
    channels = pyramids[0][0].shape[2]
    lines = [f"{levels} {DEMO['alpha']} {DEMO['d']} {DEMO['gamma']!r} 2 10 60 30 {channels}"]
    for level in range(levels):
        height, width = pyramids[0][level].shape[:2]
        lines.append(f"{level + 1} {height} {width}")
        for name, pyramid in zip(("sift1", "sift2"), pyramids):
            pyramid[level].tofile(job / f"L{level + 1}_{name}.bin")
    (job / "meta.txt").write_text("\n".join(lines) + "\n")


def run_original(binary: str, job: Path, repeats: int) -> tuple[list[float], list[float]]:
    """The original on one thread: per level (finest first) the median seconds and the final energy."""
    environment = dict(os.environ, OMP_NUM_THREADS="1")
    output = subprocess.run(
        [binary, str(job), "--pyramid", "files", "--reps", str(repeats)],
        check=True,
        capture_output=True,
        text=True,
        env=environment,
    ).stdout
    seconds: dict[int, list[float]] = {}
    energies: dict[int, float] = {}
    for line in output.splitlines():
        if line.startswith("LEVEL"):
            fields = line.split()
            level = int(fields[1])
            seconds.setdefault(level, []).append(float(fields[fields.index("level_s") + 1]))
            energies[level] = float(fields[fields.index("energy") + 1])
    levels = sorted(seconds)
    return [statistics.median(seconds[level]) for level in levels], [energies[level] for level in levels]


def run_ours(matcher: SIFTFlow, sift: torch.Tensor, threads: int, repeats: int) -> tuple[list[float], list[float]]:
    """Ours on ``threads`` threads: per level (finest first) the median seconds and the final energy;
    the coarsest level's time includes building the pyramid."""
    samples, energies = [], []
    with torch_threads(threads):
        for _ in range(repeats + 1):  # the first run compiles what the kernel cache lacks
            stamps = [time.perf_counter()]
            _, levels = matcher.match(sift[:1], sift[1:], on_level=lambda *_, s=stamps: s.append(time.perf_counter()))
            samples.append(list(reversed(np.diff(stamps))))
            energies = [float(level["energy"][-1, 0]) for level in levels]
    return [statistics.median(run[level] for run in samples[1:]) for level in range(len(energies))], energies


def side_by_side(binary: str | None, repeats: int, plot: Path | None = None) -> None:
    if not SINTEL.exists():
        print(f"\n(part 1 skipped: no Sintel frames at {SINTEL})")
        return
    matcher = SIFTFlow(**DEMO)
    rows, conversions = [], []
    for half in (False, True):
        sift = sintel_descriptors(half)
        height, width = sift.shape[-2:]
        size = f"{height} x {width}"
        ours_1, energies = run_ours(matcher, sift, 1, repeats)
        ours_2, _ = run_ours(matcher, sift, 2, repeats)
        # as SIFTFlowDescriptor hands them over (float, B x 128 x H x W), and as uint8 in that layout
        ours_float, _ = run_ours(matcher, sift.float().contiguous(), 1, repeats)
        ours_nchw, _ = run_ours(matcher, sift.contiguous(), 1, repeats)
        for name, layout in (("float NCHW", sift.float().contiguous()), ("uint8 NCHW", sift.contiguous())):
            seconds = conversion_seconds(layout, repeats)
            conversions.append([size, name, f"{seconds:.3f}", f"{100 * seconds / sum(ours_1):.1f}%"])
        original, original_energies = [math.nan] * len(ours_1), [math.nan] * len(ours_1)
        if binary:
            pyramids = [_hwc_pyramid(sift[index]) for index in (0, 1)]
            with tempfile.TemporaryDirectory() as folder:
                write_job(Path(folder), pyramids)
                original, original_energies = run_original(binary, Path(folder), repeats)
        total = sum(original)
        for name, seconds in (
            ("original C++ -O3, 1 thread", original),
            ("ours, 1 thread", ours_1),
            ("ours, 2 threads", ours_2),
            ("ours, 1 thread, float NCHW descriptors", ours_float),
            ("ours, 1 thread, uint8 NCHW descriptors", ours_nchw),
        ):
            rows.append([size, name, sum(seconds), sum(seconds) / total, *[f"{s:.3f}" for s in reversed(seconds)]])
        drift = [ours / theirs - 1 for ours, theirs in zip(energies, original_energies)]
        rows.append([size, "final energy, ours / original - 1", "", "", *[f"{d:+.2e}" for d in reversed(drift)]])
        peak = subprocess.run(  # in a fresh process: memory freed by the runs above would hide it
            [sys.executable, __file__, "--peak-only", "half" if half else "full"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        rows.append([size, "peak memory added / finest level's messages + data term", float(peak), "", "", "", "", ""])
    header = ["size", "run", "total s", "ratio", "top (55 x 128 at full size)", "level 3", "level 2", "finest"]
    print_table(
        "SIFT flow, Sintel alley_1, the original beside ours (seconds, medians; ratio = total / the original's)",
        header,
        rows,
    )
    print_table(
        "Converting both descriptors to the kernels' uint8 channels last, inside match (1 thread, fastest "
        "of the repeats; share = of the match on channels-last uint8, ours 1 thread above)",
        ["size", "given", "seconds", "share of the match"],
        conversions,
    )
    if plot:
        timed = [row for row in rows if row[1].startswith(("original", "ours, 1 thread", "ours, 2 threads"))
                 and "NCHW" not in row[1]]  # fmt: skip
        plot_table(plot, header, timed, y=header[4:], series="run", panel="size", kind="bar",
                   title="SIFT flow per pyramid level: the original C++ beside ours", y_label="seconds")  # fmt: skip


def conversion_seconds(sift: torch.Tensor, repeats: int) -> float:
    """The fastest of ``repeats`` conversions of both images, as ``match`` converts them, on 1 thread:
    the part of the float NCHW and uint8 NCHW rows above that their layout costs, measured apart
    (a few percent, under the noise of a whole match)."""
    from siftflow_nn.flow.compiled import stored_hwc

    samples = []
    with torch_threads(1):
        for _ in range(repeats):
            start = time.perf_counter()
            for index, name in enumerate(("sift1", "sift2")):
                stored_hwc(sift[index], name)
            samples.append(time.perf_counter() - start)
    return min(samples)


def peak_only(half: bool) -> None:
    """Print the peak memory one match adds, over the finest level's messages and data term."""
    sift = sintel_descriptors(half)
    height, width = sift.shape[-2:]
    matcher = SIFTFlow(**DEMO)
    matcher.match(sift[:1, :, :64, :64], sift[1:, :, :64, :64])  # load the compiled kernels first
    peak = peak_added_bytes(lambda: matcher.match(sift[:1], sift[1:]), torch.device("cpu"))
    labels = 2 * DEMO["window"] + 1
    print(peak / (height * width * (2 * 4 * labels + labels**2) * 4))


def _hwc_pyramid(sift: torch.Tensor) -> list[np.ndarray]:
    from siftflow_nn.flow.pyramid import descriptor_pyramid_hwc

    return descriptor_pyramid_hwc(np.ascontiguousarray(sift.permute(1, 2, 0).numpy()), DEMO["num_levels"])


def accuracy(device_names: list[str]) -> None:
    height, width = 436, 1024
    image1, image2, truth = synthetic_pair(height, width, max_displacement=6.0, seed=0, noise=0.05)

    def epe(flow: torch.Tensor) -> float:
        return float(end_point_error(flow.cpu(), truth, margin=10))

    for name in device_names:
        device = torch.device(name)
        pair = torch.stack([image1, image2]).to(device)
        descriptor = SIFTFlowDescriptor(cell_size=3).to(device)
        rows = []
        with torch.no_grad():
            descriptors = descriptor(pair)
            for radius in (4, 7):
                run = lambda radius=radius, d=descriptors: local_match(d[:1], d[1:], radius)[0]  # noqa: E731
                (milliseconds,) = median_ms(run, device=device, repeats=3)
                rows.append([f"local_match, radius {radius}", milliseconds, epe(run()[0])])
            matchers = [("SIFTFlow()", SIFTFlow()), ("SIFTFlow(fast=True)", SIFTFlow(fast=True))]
            if device.type == "cpu":
                matchers.append(('SIFTFlow(solver="torch")', SIFTFlow(solver="torch")))
            for label, matcher in matchers:
                run = lambda matcher=matcher, pair=pair: matcher(pair[:1], pair[1:])  # noqa: E731
                (milliseconds,) = median_ms(run, device=device, repeats=1 if "torch" in label else 3)
                rows.append([label, milliseconds, epe(run()[0])])
        rows.append(["zero flow", float("nan"), epe(torch.zeros_like(truth))])
        rows.append(["best integer flow (rounded truth)", float("nan"), epe(truth.round())])
        print_table(
            f"Matching accuracy, {device.type} ({torch.get_num_threads()} threads), {height} x {width} synthetic pair",
            ["method", "ms", "EPE px"],
            rows,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--original", help="the original's bpflow_c2f binary (../shared/bpflow/README.md)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", choices=["cpu", "cuda"], action="append")
    parser.add_argument("--skip-accuracy", action="store_true")
    parser.add_argument("--peak-only", choices=["full", "half"], help=argparse.SUPPRESS)
    add_plot_argument(parser)
    args = parser.parse_args()
    if args.peak_only:
        return peak_only(args.peak_only == "half")
    side_by_side(args.original, args.repeats, args.plot)
    if not args.skip_accuracy:
        accuracy(args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]))


if __name__ == "__main__":
    main()
