"""The DocUNet metrics: time per pair by stage, LD / Li-D beside the original matcher's, the benchmark run.

Pairs: ``synthetic.document_pair`` pages of 600 x 450 (text-like strokes, a table, a block on
white) and the page resampled through a smooth field of 2 to 8 px; the benchmark's area resize
takes them to 894 x 670, about the size of DocUNet's scans, and SIFT flow runs at half that.

Part 1: seconds per pair by stage (median of ``--repeats``; AD's share of the pair), on one thread
and on two, and peak memory added by one pair; ``--plot FILE`` draws it. Part 2 (with
``--original BUILD/bpflow_c2f``, see ../shared/bpflow): the SIFT flow stage on the same descriptors
and the same 2010 pyramid through Ce Liu's C++
(driven level by level with the 2010 windows and iterations) beside ours, one thread each:
seconds, and LD / Li-D from each flow. Part 3: ``siftflow-nn docunet`` over ``--pairs`` pairs
(65 scans x 2 photos by default, as the benchmark, a different page size per scan) as a user runs it,
a fresh process whose start-up counts: on all threads, then ``--jobs 2``. Part 4: ``--ocr`` with
both protocols on tests/data/docunet_bench, OCR time apart (needs Tesseract).

    python benchmarks/bench_docunet.py [--original BUILD/bpflow_c2f] [--repeats 3] [--pairs 130] [--plot FILE]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from _common import peak_added_bytes, print_table
from _plot import add_plot_argument, plot_table

from siftflow_nn import matlab
from siftflow_nn.flow.compiled import CompiledSolver
from siftflow_nn.flow.pyramid import upsample_offsets
from siftflow_nn.flow.sift_flow import SIFTFlow
from siftflow_nn.metrics import docunet
from siftflow_nn.metrics.aligned_distortion import aligned_distortion_of_flow
from siftflow_nn.metrics.ocr import TesseractNotFoundError, tesseract_version
from siftflow_nn.synthetic import document_pair, write_document_benchmark

HEIGHT, WIDTH = 600, 450
DISPLACEMENTS = (2.0, 4.0, 6.0, 8.0)


def pair(index: int) -> tuple[torch.Tensor, torch.Tensor]:
    photo, scan, _ = document_pair(HEIGHT, WIDTH, DISPLACEMENTS[index % 4], seed=100 + index)
    return matlab.im2uint8(photo), matlab.im2uint8(scan)


def stages(photo: torch.Tensor, scan: torch.Tensor) -> dict[str, float]:
    """Seconds of each stage of one pair, as ``docunet_metrics`` runs them."""
    seconds, stamp = {}, time.perf_counter()

    def lap(name: str) -> None:
        nonlocal stamp
        now = time.perf_counter()
        seconds[name], stamp = now - stamp, now

    unwarped, scan = docunet.benchmark_pair(photo, scan)
    lap("gray + area resize")
    docunet._ms_ssim(unwarped, scan)
    lap("MS-SSIM")
    halves = [docunet._halves(image) for image in (scan, unwarped)]
    lap("blur + halve")
    sifts = [docunet._release_descriptor(half) for half in halves]
    lap("descriptors (float64, to uint8)")
    matcher = SIFTFlow(schedule="2010", derivative="release")
    flow = matcher.match(*sifts, energies="none")[0]  # as docunet_metrics
    lap("SIFT flow (2010)")
    docunet._mean_length(flow), docunet._line_spread(flow)
    lap("LD + Li-D")
    aligned_distortion_of_flow(flow, scan)
    lap("AD (imgradient, 4 LSQR steps)")
    seconds["total"] = sum(seconds.values())
    stamp = time.perf_counter()
    matcher.match(*sifts, energies="every")  # not part of the metrics: what recording energies costs
    lap("SIFT flow (2010), every iteration's energy (not in total)")
    return seconds


def part_stages(repeats: int, plot: Path | None) -> None:
    rows = []
    pairs = [pair(index) for index in range(3)]
    stages(*pairs[0])  # compiles what the kernel cache lacks
    for threads in (1, 2):
        torch.set_num_threads(threads)
        runs = [stages(*pairs[run % len(pairs)]) for run in range(repeats * len(pairs))]
        for name in runs[0]:
            rows.append([name, threads, statistics.median(run[name] for run in runs)])
    rows.append(["peak memory added by one pair (MB)", 2, peak_of_a_first_pair()])
    header = ["stage", "threads", "seconds"]
    print_table(
        f"DocUNet metrics, one {HEIGHT} x {WIDTH} pair (894 x 670 after the area resize), seconds (medians)",
        header,
        rows,
    )
    total = {row[1]: row[2] for row in rows if row[0] == "total"}
    ad = {row[1]: row[2] for row in rows if row[0].startswith("AD")}
    print("AD's share of a pair: " + ", ".join(f"{ad[t] / total[t]:.1%} on {t} thread(s)" for t in (1, 2)))
    if plot:
        staged = [row for row in rows if row[0] != "total" and "not in total" not in row[0] and "MB" not in row[0]]
        title = f"DocUNet metrics of one pair, by stage ({HEIGHT} x {WIDTH} pages)"
        plot_table(plot, header, staged, y="seconds", x="stage", series="threads", kind="bar", title=title,
                   y_label="seconds")  # fmt: skip


def peak_of_a_first_pair() -> float:
    """MB that one pair adds to a fresh process (its pages loaded): in this one, the allocator holds
    on to the memory the pairs above freed, so a further pair adds nothing."""
    output = subprocess.run(
        [sys.executable, __file__, "--peak-of-one-pair"], capture_output=True, text=True, check=True
    )
    return float(output.stdout.split()[-1])


def _print_peak_of_one_pair() -> None:
    torch.set_num_threads(2)
    pages = pair(0)
    print(peak_added_bytes(lambda: docunet.docunet_metrics(*pages), torch.device("cpu")) / 2**20)


# The harness runs the 2009 schedule; one level at a time with these wsize / nIterations it runs
# the 2010 one: window wsize + i - 1, and round(linspace(n, 0.6 n, 4))[i] = 30 at level i.
_LEVEL_SETTINGS = {1: (2, 30), 2: (3, 35), 3: (4, 41), 4: (2, 30)}


def original_2010(binary: str, pyramids, job: Path) -> tuple[np.ndarray, float]:
    """The original matcher's 2010 flow from our 2010 pyramid (equal to MATLAB's: the tests check
    it on ../shared/reference/release), and its seconds (the mex calls' level times)."""
    matcher = SIFTFlow(schedule="2010")
    flow, seconds = None, 0.0
    channels = pyramids[0][0].shape[2]
    for level in range(1, 5):
        for name, pyramid in zip(("sift1", "sift2"), pyramids):
            pyramid[level - 1].tofile(job / f"L{level}_{name}.bin")
        for axis in ("offx", "offy"):  # read for every level below the top, even those not run: placeholders
            np.zeros(pyramids[0][level - 1].shape[:2], np.int32).tofile(job / f"L{level}_{axis}.bin")
    for level in range(4, 0, -1):
        height, width = pyramids[0][level - 1].shape[:2]
        wsize, iterations = _LEVEL_SETTINGS[level]
        lines = [f"4 {matcher.alpha!r} {matcher.d!r} {matcher.gamma!r} {wsize} 10 60 {iterations} {channels}"]
        lines += [f"{k} {p.shape[0]} {p.shape[1]}" for k, p in enumerate(pyramids[0], start=1)]
        (job / "meta.txt").write_text("\n".join(lines) + "\n")
        offsets = None if flow is None else upsample_offsets(torch.from_numpy(flow)[None], (height, width))[0].numpy()
        if offsets is not None:
            offsets[0].tofile(job / f"L{level}_offx.bin")
            offsets[1].tofile(job / f"L{level}_offy.bin")
        command = [binary, str(job), "--pyramid", "files", "--levels", str(level)]
        if offsets is not None:
            command += ["--offsets", "files"]
        output = subprocess.run(
            command, check=True, capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1")
        ).stdout
        line = next(line for line in output.splitlines() if line.startswith("LEVEL"))
        fields = line.split()
        expected = 60 if level == 4 else 30
        assert int(fields[fields.index("iters") + 1]) == expected, line
        seconds += float(fields[fields.index("level_s") + 1])
        vx, vy = (
            np.fromfile(job / "out" / f"L{level}_{axis}.bin", np.int32).reshape(height, width) for axis in ("vx", "vy")
        )
        flow = np.stack([vx, vy]).astype(np.float32)
    return flow, seconds


def part_original(binary: str | None, count: int) -> None:
    if binary is None:
        print("\n(part 2 skipped: pass --original BUILD/bpflow_c2f, built as ../shared/bpflow/README.md says)")
        return
    torch.set_num_threads(1)
    rows = []
    for index in range(count):
        unwarped, scan = docunet.benchmark_pair(*pair(index))
        sifts = [docunet._release_descriptor(docunet._halves(image)) for image in (scan, unwarped)]
        matcher = SIFTFlow(schedule="2010", derivative="release")
        matcher.match(*sifts, energies="none")  # warm
        start = time.perf_counter()
        ours = matcher.match(*sifts, energies="none")[0]
        ours_seconds = time.perf_counter() - start
        pyramids = [[level[0] for level in CompiledSolver().pyramid(sift, 4, "2010", "sift")] for sift in sifts]
        with tempfile.TemporaryDirectory() as folder:
            (Path(folder) / "out").mkdir()
            theirs, their_seconds = original_2010(binary, pyramids, Path(folder))
        theirs = torch.from_numpy(theirs)[None]
        ld = [float(docunet._mean_length(flow)) for flow in (ours, theirs)]
        li_d = [float(docunet._line_spread(flow)) for flow in (ours, theirs)]
        name = f"pair {index} ({DISPLACEMENTS[index % 4]:g} px)"
        equal = float((ours == theirs).all(1).double().mean())
        drifts = [f"{ld[0] / ld[1] - 1:+.1e}", f"{li_d[0] / li_d[1] - 1:+.1e}"]
        rows.append([name, their_seconds, ours_seconds, ours_seconds / their_seconds,
                     f"{ld[1]:.5f}", drifts[0], f"{li_d[1]:.5f}", drifts[1], f"{equal:.6f}"])  # fmt: skip
    print_table(
        "SIFT flow stage (447 x 335, 2010 schedule): Ce Liu's C++ beside ours, one thread, same descriptors, pyramid",
        ["pair", "original s", "ours s (incl. pyramid)", "ratio", "LD original", "LD ours / orig - 1",
         "Li-D original", "Li-D ours / orig - 1", "flow equal"],
        rows,
    )  # fmt: skip


def part_benchmark(pairs: int) -> None:
    scans = max(1, pairs // 2)
    rows = []
    heights, widths = ((size + step * (1 - (scans + 1) // 2), size + step * (scans - (scans + 1) // 2))
                 for size, step in ((HEIGHT, 4), (WIDTH, 3)))  # fmt: skip
    with tempfile.TemporaryDirectory() as folder:
        # a different page size per scan, as in the real benchmark: nothing may be compiled per size
        rec_dir, scan_dir = write_document_benchmark(folder, scans=scans, height=HEIGHT, width=WIDTH, varied_sizes=True)
        for jobs in (1, 2):
            # the command as a user runs it: a fresh interpreter, its imports and start-up included
            command = [sys.executable, "-m", "siftflow_nn", "docunet", str(rec_dir), str(scan_dir)]
            start = time.perf_counter()
            subprocess.run([*command, "--jobs", str(jobs), "--device", "cpu"], stdout=subprocess.DEVNULL, check=True)
            seconds = time.perf_counter() - start
            rows.append([f"siftflow-nn docunet --jobs {jobs}", 2 * scans, seconds, seconds / (2 * scans)])
    print_table(
        f"The benchmark's run over {2 * scans} pairs of {scans} page sizes ({heights[0]} x {widths[0]} to "
        f"{heights[1]} x {widths[1]}) on {os.cpu_count()} cores (seconds, start-up included)",
        ["command", "pairs", "seconds", "per pair"],
        rows,
    )


def part_ocr() -> None:
    """``--ocr`` on tests/data/docunet_bench (real words: Tesseract reads nothing in synthetic strokes),
    its OCR time apart from the image metrics', as the command reports them."""
    bench = Path(__file__).resolve().parents[1] / "tests" / "data" / "docunet_bench"
    try:
        tesseract = tesseract_version()
    except TesseractNotFoundError as error:
        print(f"\n(part 4 skipped: {error})")
        return
    rows = []
    for protocol in ("doctr", "uvdoc"):
        for jobs in (1, 2):
            command = [sys.executable, "-m", "siftflow_nn", "docunet", str(bench / "rec"), str(bench / "scan"),
                       "--ocr", protocol, "--subset", "all", "--jobs", str(jobs)]  # fmt: skip
            start = time.perf_counter()
            output = subprocess.run(command, capture_output=True, text=True, check=True)
            seconds = time.perf_counter() - start
            lines = (output.stdout + output.stderr).splitlines()  # the timing line is progress: stderr
            timing = next(line for line in lines if line.startswith("image metrics:"))
            rows.append([f"--ocr {protocol} --jobs {jobs}", seconds, timing])
    print_table(
        f"OCR on tests/data/docunet_bench (4 pairs, 6 images; Tesseract {tesseract}): the command, start-up included",
        ["command", "seconds", "as the command reports it"],
        rows,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original", help="the original matcher's harness binary (../shared/bpflow)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--compare", type=int, default=4, help="pairs matched by both in part 2")
    parser.add_argument("--pairs", type=int, default=130, help="pairs in part 3 (0: skip it)")
    parser.add_argument("--skip-ocr", action="store_true", help="leave out part 4 (Tesseract)")
    parser.add_argument("--peak-of-one-pair", action="store_true", help=argparse.SUPPRESS)  # part 1's child
    add_plot_argument(parser)
    args = parser.parse_args()
    if args.peak_of_one_pair:
        return _print_peak_of_one_pair()
    print(f"torch {torch.__version__}, {os.cpu_count()} cores")
    part_stages(args.repeats, args.plot)
    part_original(args.original, args.compare)
    if args.pairs:
        part_benchmark(args.pairs)
    if not args.skip_ocr:
        part_ocr()


if __name__ == "__main__":
    main()
