"""First-call cost: the numba kernels compiled in a fresh installation, then read from the cache.

Each row runs in a fresh process with an empty ``NUMBA_CACHE_DIR`` (what a new installation has),
times the first call and then a second one in the same process, and prints both with their ratio.
Rows: ``SIFTFlow()`` (2009 schedule), then ``SIFTFlow(schedule="2010")`` in the same process (the
windows that schedule adds), and ``docunet_metrics`` on one benchmark-sized pair alone.

    python benchmarks/bench_compile.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from _common import print_table

_MATCHING = """
import json, time, torch, siftflow_nn as sf
images = torch.rand(2, 3, 96, 128)
seconds = []
for matcher in (sf.SIFTFlow(), sf.SIFTFlow(schedule="2010", derivative="release")):
    for _ in range(2):
        start = time.perf_counter(); matcher(images[:1], images[1:]); seconds.append(time.perf_counter() - start)
print(json.dumps(seconds))
"""

_DOCUNET = """
import json, sys, time
sys.path.insert(0, {benchmarks!r})
from bench_docunet import pair
from siftflow_nn.metrics import docunet_metrics
photo, scan = pair(0)
seconds = []
for _ in range(2):
    start = time.perf_counter(); docunet_metrics(photo, scan); seconds.append(time.perf_counter() - start)
print(json.dumps(seconds))
"""


def fresh_run(code: str) -> list[float]:
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    benchmarks = str(Path(__file__).resolve().parent)
    matching = fresh_run(_MATCHING)
    docunet = fresh_run(_DOCUNET.format(benchmarks=benchmarks))
    rows = [
        ["SIFTFlow() (2009), 96 x 128", *matching[:2]],
        ['then SIFTFlow(schedule="2010"), same process', *matching[2:]],
        ["docunet_metrics, one 600 x 450 pair, alone", *docunet],
    ]
    rows = [[name, first, second, second / first] for name, first, second in rows]
    print_table(
        f"First call with an empty numba cache, then the second call ({os.cpu_count()} cores, seconds)",
        ["call", "first s", "second s", "second / first"],
        rows,
    )


if __name__ == "__main__":
    main()
