"""End-point error and time of local_match and SIFTFlow on a 436 x 1024 pair with known flow.

The pair is synthetic (a textured image and a smooth random warp of up to 6 px, Gaussian noise
0.05), so that the error can be measured; Sintel's frames, which the seed benchmarked on, come
without ground truth here. EPE is over the interior (10 px margin), in pixels.

    python benchmarks/bench_matching.py [--device cpu|cuda] [--size 436x1024]
"""

from __future__ import annotations

import argparse

import torch
from _common import median_ms, print_table

from siftflow_nn import SIFTFlow, SIFTFlowDescriptor, local_match
from siftflow_nn.synthetic import synthetic_pair


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], action="append")
    parser.add_argument("--size", default="436x1024", help="HxW (default 436x1024)")
    args = parser.parse_args()
    height, width = (int(part) for part in args.size.split("x"))
    image1, image2, truth = synthetic_pair(height, width, max_displacement=6.0, seed=0, noise=0.05)

    def epe(flow: torch.Tensor) -> float:
        return float((flow.cpu() - truth).square().sum(0).sqrt()[10:-10, 10:-10].mean())

    for name in args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"]):
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
            for fast in (False, True):
                matcher = SIFTFlow(fast=fast).to(device)
                run = lambda matcher=matcher, pair=pair: matcher(pair[:1], pair[1:])  # noqa: E731
                (milliseconds,) = median_ms(run, device=device, repeats=1 if name == "cpu" else 3)
                rows.append([f"SIFTFlow{' (fast)' if fast else ''}, 4 levels", milliseconds, epe(run()[0])])
        rows.append(["zero flow", float("nan"), epe(torch.zeros_like(truth))])
        rows.append(["best integer flow (rounded truth)", float("nan"), epe(truth.round())])
        base = rows[1][1]
        for row in rows:
            row.append(row[1] / base)
        print_table(
            f"Matching, {device.type}, {height} x {width}, descriptors with cell size 3 computed once",
            ["method", "ms", "EPE px", "time / local_match r7"],
            rows,
        )


if __name__ == "__main__":
    main()
