"""Images per second of ``siftflow-nn extract-dataset``: one process, then two (DDP, CPU).

Makes a folder of 256 x 256 RGB images (synthetic textures), runs the command as a user would and
reports two rates: the whole command (Python and Lightning start-up included) and the steady rate
the command prints itself (from the end of the first shard on, all ranks together).

    python benchmarks/bench_extraction.py [--images 192]
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


def run(root: Path, output: Path, *extra: str) -> tuple[float, float]:
    """Seconds for the whole command, and the steady images/s it reports."""
    command = [sys.executable, "-m", "siftflow_nn", "extract-dataset", str(root), "-o", str(output),
               "--shard-size", "16", "--accelerator", "cpu", "--workers", "1", *extra]  # fmt: skip
    start = time.perf_counter()
    result = subprocess.run(command, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    steady = re.search(r"steady rate ([0-9.]+) images/s", result.stderr)
    if steady is None:
        raise RuntimeError(f"extract-dataset printed no steady rate:\n{result.stderr[-2000:]}")
    return seconds, float(steady.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=192)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        root.mkdir()
        for index in range(args.images):
            write_image(root / f"image_{index:04d}.png", textured_image(256, 256, seed=index))
        rows = []
        for name, extra in [("1 process", ()), ("2 processes (ddp, gloo)", ("--devices", "2", "--strategy", "ddp"))]:
            seconds, steady = run(root, Path(folder) / name.split()[0], *extra)
            rows.append([name, seconds, args.images / seconds, steady])
        for row in rows:
            row.extend([row[2] / rows[0][2], row[3] / rows[0][3]])
        print_table(
            f"extract-dataset, {args.images} images of 256 x 256, CPU ({os.cpu_count()} cores)",
            ["run", "command s", "images/s (whole)", "images/s (steady)", "speed-up (whole)", "speed-up (steady)"],
            rows,
        )


if __name__ == "__main__":
    main()
