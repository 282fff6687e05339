"""What SiftFlowTorch's never-overwritten results cost, and what recycling released memory saves.

The old sift-flow-gpu package returned its internal buffer, so a second call overwrote the first
result. SiftFlowTorch never does that; on the CPU it writes into the previous output's memory only
once the caller has let go of it. Measured interleaved in one process, per batch size:

- *released*: the caller drops each result before the next call (a loop that consumes results);
- *held*: the caller keeps every result (each call must take fresh memory);
- the floor peers: writing one output-sized tensor into fresh memory, and into a reused buffer.

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
    # One instance per peer: each recycles only its own last output.
    sift_flow = SiftFlowTorch(cuda=device.type == "cuda")
    holder = SiftFlowTorch(cuda=device.type == "cuda")
    rows = []
    for batch in (1, 4):
        images = [np.ascontiguousarray(frame) for _ in range(batch)]
        shape = tuple(sift_flow.extract_descriptor(images).shape)
        reused = torch.empty(shape, device=device)
        held: list[object] = []

        def keep() -> None:
            held[:] = [holder.extract_descriptor(images)]  # noqa: B023 (kept while the next call runs)

        def release() -> None:
            sift_flow.extract_descriptor(images)  # noqa: B023 (dropped at once)

        released, kept, fresh, reuse = median_ms(
            release,
            keep,
            lambda: torch.empty(shape, device=device).fill_(1),  # noqa: B023
            lambda: reused.fill_(1),  # noqa: B023
            device=device,
            repeats=5,
        )
        rows.append([batch, released, kept, kept / released, fresh - reuse])
    print_table(
        f"SiftFlowTorch.extract_descriptor on {device.type}, {source} (436 x 1024)",
        ["batch", "results released ms", "results held ms", "held / released", "fresh-memory cost of one output ms"],
        rows,
    )


if __name__ == "__main__":
    main()
