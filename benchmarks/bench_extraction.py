"""Images per second of ``siftflow-nn extract-dataset``: one process, then two (DDP, CPU).

Makes a folder of 256 x 256 RGB images (synthetic textures), then times the whole command,
process start-up included, as a user would run it.

    python benchmarks/bench_extraction.py [--images 96]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_table

from siftflow_nn.io import write_image
from siftflow_nn.synthetic import textured_image


def run(root: Path, output: Path, *extra: str) -> float:
    command = [sys.executable, "-m", "siftflow_nn", "extract-dataset", str(root), "-o", str(output),
               "--shard-size", "16", "--accelerator", "cpu", "--workers", "1", *extra]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=96)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder) / "images"
        root.mkdir()
        for index in range(args.images):
            write_image(root / f"image_{index:04d}.png", textured_image(256, 256, seed=index))
        rows = []
        for name, extra in [("1 process", ()), ("2 processes (ddp, gloo)", ("--devices", "2", "--strategy", "ddp"))]:
            seconds = run(root, Path(folder) / name.split()[0], *extra)
            rows.append([name, seconds, args.images / seconds])
        for row in rows:
            row.append(row[2] / rows[0][2])
        print_table(
            f"extract-dataset, {args.images} images of 256 x 256, CPU, whole command (start-up included)",
            ["run", "seconds", "images / s", "speed-up"],
            rows,
        )


if __name__ == "__main__":
    main()
