"""First use as a new user gets it: a wheel built from a clean clone, installed into an empty folder.

The compiled kernels are C++ built with the package (``csrc/``, ``setup.py``), so nothing should be
compiled at first use. This script checks that claim as the issue defines it:

1. clone the repository's committed state into a temporary folder, build a wheel from it
   (``pip wheel``, the build's own isolated environment: what a user or cibuildwheel does), and time
   the build;
2. make an empty virtual environment, install torch (``--torch``, default ``torch==2.13.0``) and the
   wheel, with an empty pip cache for the wheel's own dependencies; caches of any kind (torch's
   inductor, ``XDG_CACHE_HOME``) point into a fresh folder;
3. in fresh processes of that environment: the first and the second call of ``SIFTFlow()`` and of
   ``docunet_metrics``, a first call at an image size never seen before, a run over DocUNet pages of
   eight sizes (first pair, then the others), the import alone, and ``siftflow-nn flow`` on a
   160 x 224 pair as a command beside its matching alone.

    python benchmarks/bench_compile.py [--keep DIR] [--torch torch==2.13.0] [--plot FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import print_table
from _plot import add_plot_argument, plot_table

REPOSITORY = Path(__file__).resolve().parents[1]

# Runs in the fresh environment: every timing is a wall-clock second, first call then repeated.
_PROBE = r"""
import json, sys, time
start = time.perf_counter()
import torch
import siftflow_nn as sf
from siftflow_nn.metrics import docunet_metrics
from siftflow_nn.synthetic import document_pair, synthetic_pair
from siftflow_nn import matlab, _native
seconds = {"import": time.perf_counter() - start, "kernels": _native.kernels is not None}

def twice(name, call):
    for label in ("first", "second"):
        start = time.perf_counter(); call(); seconds[f"{name} {label}"] = time.perf_counter() - start

image1, image2, _ = synthetic_pair(160, 224, max_displacement=3.0, seed=1)
twice("SIFTFlow() 160 x 224", lambda: sf.SIFTFlow()(image1[None], image2[None]))
other1, other2, _ = synthetic_pair(173, 251, max_displacement=3.0, seed=2)
twice("SIFTFlow() at a size never seen, 173 x 251", lambda: sf.SIFTFlow()(other1[None], other2[None]))
photo, scan, _ = document_pair(600, 450, 4.0, seed=3)
photo, scan = matlab.im2uint8(photo), matlab.im2uint8(scan)
twice("docunet_metrics 600 x 450", lambda: docunet_metrics(photo, scan))
pages = []
for index in range(8):
    photo, scan, _ = document_pair(560 + 17 * index, 420 + 13 * index, 2.0 + index % 4, seed=10 + index)
    pages.append((matlab.im2uint8(photo), matlab.im2uint8(scan)))
times = []
for photo, scan in pages:
    start = time.perf_counter(); docunet_metrics(photo, scan); times.append(time.perf_counter() - start)
seconds["8 page sizes: first pair"] = times[0]
seconds["8 page sizes: median of the other 7"] = sorted(times[1:])[3]
print(json.dumps(seconds))
"""

_MATCH_ONLY = r"""
import json, time, torch
import siftflow_nn as sf
from siftflow_nn import _native
from siftflow_nn.io import read_image
assert _native.kernels is not None, _native.MISSING
images = [read_image(path)[None] for path in {paths!r}]
matcher = sf.SIFTFlow()
matcher(*images)
seconds = []
for _ in range(3):  # best of 3, as the command's time: one sample is at the mercy of the machine's noise
    start = time.perf_counter(); matcher(*images); seconds.append(time.perf_counter() - start)
print(json.dumps(min(seconds)))
"""


def run(command: list[str], **options) -> float:
    """Run ``command`` (it must succeed) and return its wall-clock seconds."""
    start = time.perf_counter()
    subprocess.run(command, check=True, **options)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--keep", type=Path, help="build and install here (kept) instead of a temporary folder")
    parser.add_argument("--torch", default="torch==2.13.0", help="the torch requirement installed first")
    add_plot_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as temporary:
        work = args.keep or Path(temporary)
        work.mkdir(parents=True, exist_ok=True)
        quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL}
        clone, wheels, venv, caches = (work / name for name in ("clone", "wheels", "venv", "caches"))
        run(["git", "clone", "--quiet", str(REPOSITORY), str(clone)])
        env = dict(os.environ, PIP_CACHE_DIR=str(caches / "pip"), XDG_CACHE_HOME=str(caches))
        env["TORCHINDUCTOR_CACHE_DIR"] = str(caches / "inductor")
        build = run(
            [sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(wheels), str(clone)], env=env, **quiet
        )
        wheel = next(wheels.glob("siftflow_nn-*.whl"))
        run([sys.executable, "-m", "venv", str(venv)])
        python = str(venv / "bin" / "python")
        run([python, "-m", "pip", "install", "--quiet", args.torch], env=env, **quiet)
        install = run([python, "-m", "pip", "install", "--quiet", str(wheel)], env=env, **quiet)
        probe = subprocess.run([python, "-c", _PROBE], env=env, cwd=work, capture_output=True, text=True, check=True)
        seconds = json.loads(probe.stdout.strip().splitlines()[-1])
        # siftflow-nn flow as a command (a fresh process: imports and all) beside its matching alone
        pair = [str(work / "a.png"), str(work / "b.png")]
        subprocess.run([python, "-c", "from siftflow_nn.synthetic import synthetic_pair; from siftflow_nn.io import "
                        f"write_image; a, b, _ = synthetic_pair(160, 224, 3.0, seed=1); write_image({pair[0]!r}, a); "
                        f"write_image({pair[1]!r}, b)"], env=env, check=True)  # fmt: skip
        command = [str(venv / "bin" / "siftflow-nn"), "flow", *pair, "-o", str(work / "flow.flo")]
        run(command, env=env, **quiet)  # once, so that both runs below find the files in the page cache
        flow_command = min(run(command, env=env, **quiet) for _ in range(3))
        # cwd: not the checkout, whose own siftflow_nn would shadow the wheel's
        match_only = json.loads(
            subprocess.run([python, "-c", _MATCH_ONLY.format(paths=pair)], env=env, cwd=work, capture_output=True,
                           text=True, check=True).stdout.strip().splitlines()[-1]
        )  # fmt: skip
    if not seconds.pop("kernels"):
        raise SystemExit("the wheel's compiled kernels did not load: its numbers would be the torch fallback's")
    rows = [
        ["build the wheel (pip wheel, a clean clone)", build, "", ""],
        ["install the wheel into a venv that has torch", install, "", ""],
        ["import torch + siftflow_nn (fresh process)", seconds.pop("import"), "", ""],
    ]
    names = sorted({key.rsplit(" ", 1)[0] for key in seconds if key.endswith((" first", " second"))},
                   key=lambda name: list(seconds).index(f"{name} first"))  # fmt: skip
    for name in names:
        first, second = seconds[f"{name} first"], seconds[f"{name} second"]
        rows.append([name, first, second, first - second])
    rows.append(["docunet_metrics, 8 page sizes: first pair, median of the others",
                 seconds["8 page sizes: first pair"], seconds["8 page sizes: median of the other 7"],
                 seconds["8 page sizes: first pair"] - seconds["8 page sizes: median of the other 7"]])  # fmt: skip
    rows.append(["siftflow-nn flow 160 x 224 (command, best of 3) / its matching alone (best of 3)", flow_command, match_only,
                 flow_command / match_only])  # fmt: skip
    header = ["what (fresh install: wheel from a clean clone, empty caches)", "first s", "again s", "first - again s"]
    print_table(f"First use after a fresh install ({os.cpu_count()} cores, wall-clock seconds)", header, rows)
    print("(last row: the command's seconds, its matching's, and their ratio in the last column)")
    if args.plot:
        plot_table(args.plot, header, rows[3:-1], y=["first s", "again s"], x=header[0], kind="bar",
                   title="First call after a fresh install, and again", y_label="seconds")  # fmt: skip


if __name__ == "__main__":
    main()
