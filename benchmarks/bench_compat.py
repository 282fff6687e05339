"""What SiftFlowTorch pays for returning a fresh result on every call instead of reusing a buffer.

The old sift-flow-gpu package returned its internal buffer, so a second call overwrote the first
result. SiftFlowTorch allocates a new output each call. This measures that choice: the call's time,
and the difference between writing an output-sized tensor into fresh memory and into a reused
buffer (what reuse could save at most), measured interleaved in one process.

    python benchmarks/bench_compat.py [--device cpu|cuda]
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import benchmark_image, median_ms, print_table

from siftflow_nn import SiftFlowTorch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args()
    device = torch.device(args.device)
    image, source = benchmark_image()
    frame = (image[0].permute(1, 2, 0) * 255).round().to(torch.uint8).numpy()
    sift_flow = SiftFlowTorch(cuda=device.type == "cuda")
    rows = []
    for batch in (1, 4):
        images = [np.ascontiguousarray(frame) for _ in range(batch)]
        shape = tuple(sift_flow.extract_descriptor(images).shape)
        reused = torch.empty(shape, device=device)
        call, fresh, reuse = median_ms(
            lambda: sift_flow.extract_descriptor(images),  # noqa: B023
            lambda: torch.empty(shape, device=device).fill_(1),  # noqa: B023
            lambda: reused.fill_(1),  # noqa: B023
            device=device,
            repeats=5,
        )
        rows.append([batch, call, fresh - reuse, (fresh - reuse) / call])
    print_table(
        f"SiftFlowTorch.extract_descriptor on {device.type}, {source} (436 x 1024), fresh output per call",
        ["batch", "call ms", "fresh-memory cost ms (at most saved by reuse)", "share of the call"],
        rows,
    )


if __name__ == "__main__":
    main()
