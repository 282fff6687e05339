"""Images per second and peak memory of ``siftflow-nn extract-dataset``: one process, then two (DDP).

Makes a folder of synthetic textured RGB images, runs the command as a user would and reports the
whole command's rate (Python and Lightning start-up included), the steady rate the command prints
itself (from the end of the first batch on, all ranks together), and the peak resident memory of
the largest process (``ru_maxrss`` of the command's process tree).

    python benchmarks/bench_extraction.py [--images 192] [--large 24]
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_table

from siftflow_nn.io import write_image
from siftflow_nn.synthetic import textured_image

# Runs the command and prints the peak RSS (KiB) of its largest process: children are waited for,
# so RUSAGE_CHILDREN covers the ranks a launcher started too.
_MEASURE = "import resource, subprocess, sys; code = subprocess.run(sys.argv[1:]).returncode; " \
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr); sys.exit(code)"  # fmt: skip


def run(root: Path, output: Path, *extra: str) -> tuple[float, float, float]:
    """Seconds for the whole command, the steady images/s it reports, its peak RSS in GiB."""
    command = [sys.executable, "-c", _MEASURE, sys.executable, "-m", "siftflow_nn", "extract-dataset", str(root),
               "-o", str(output), "--accelerator", "cpu", "--workers", "1", *extra]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    steady = re.search(r"steady rate ([0-9.]+) images/s", result.stderr)
    if steady is None:
        raise RuntimeError(f"extract-dataset printed no steady rate:\n{result.stderr[-2000:]}")
    peak_kib = int(result.stderr.strip().splitlines()[-1])
    return seconds, float(steady.group(1)), peak_kib / 2**20


def make_images(folder: Path, count: int, height: int, width: int) -> Path:
    folder.mkdir()
    for index in range(count):
        write_image(folder / f"image_{index:04d}.png", textured_image(height, width, seed=index))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=192, help="256 x 256 images for the rates")
    parser.add_argument("--large", type=int, default=24, help="436 x 1024 images for the memory rows")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        small = make_images(Path(folder) / "small", args.images, 256, 256)
        large = make_images(Path(folder) / "large", args.large, 436, 1024)
        runs = [
            (f"{args.images} x 256^2, 1 process", small, args.images, ("--shard-size", "16")),
            (f"{args.images} x 256^2, 2 processes (ddp, gloo)", small, args.images,
             ("--shard-size", "16", "--devices", "2", "--strategy", "ddp")),
            (f"{args.large} x 436 x 1024, 1 process, one shard", large, args.large, ()),
            (f"{args.large} x 436 x 1024, 2 processes (ddp)", large, args.large,
             ("--devices", "2", "--strategy", "ddp")),
        ]  # fmt: skip
        rows = []
        for index, (name, root, count, extra) in enumerate(runs):
            seconds, steady, peak = run(root, Path(folder) / f"out{index}", *extra)
            rows.append([name, seconds, count / seconds, steady, peak])
        print_table(
            f"extract-dataset, CPU ({os.cpu_count()} cores), uint8 store, cell size 2, step 1",
            ["run", "command s", "images/s (whole)", "images/s (steady)", "peak RSS GiB (largest process)"],
            rows,
        )


if __name__ == "__main__":
    main()
