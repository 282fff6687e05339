"""Speed and memory of SIFTFlowDescriptor on a 436 x 1024 RGB image, against peers run in the same process.

For every row: the median time after warm-up; the *floor*, the time to write one tensor of the
output's size into fresh memory (``torch.empty(shape).fill_(1)``); kornia's DenseSIFTDescriptor on
the same image (grayscale, as it requires; stride = step, spatial_bin_size = cell size); with
``--seed-port DIR``, the sift-flow-gpu port this package started from (``DIR`` holds its
``sift_flow_torch.py``: a clone of https://github.com/hmorimitsu/sift-flow-gpu) on the same RGB
frames; and the peak memory one call adds to the process, against the output's size. The peers run
at every batch size, fp32 rows only, each interleaved with ours.

    python benchmarks/bench_descriptor.py                  # CPU (and CUDA when present)
    python benchmarks/bench_descriptor.py --device cuda    # one device only
    python benchmarks/bench_descriptor.py --quick          # fewer rows, no torch.compile
    python benchmarks/bench_descriptor.py --seed-port sift-flow-gpu --plot docs/figures/descriptor_cpu.svg

Further sections: torch.compile against eager (same run), and forward + backward time and peak
memory for batch 8 at 256 x 256.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import subprocess
import sys
from pathlib import Path

import kornia
import numpy as np
import torch
from _common import benchmark_image, median_ms, peak_added_bytes, print_table
from _plot import add_plot_argument, plot_table

from siftflow_nn import SIFTFlowDescriptor

MIB = float(1 << 20)


PRECISIONS = {"fp32": None, "fp16 autocast": torch.float16, "bf16 autocast": torch.bfloat16}
HEADER = [
    "step",
    "batch",
    "precision",
    "ours ms",
    "floor ms",
    "ours / floor",
    "kornia ms",
    "kornia / ours",
    "seed port ms",
    "seed port / ours",
    "peak added MiB",
    "output MiB",
    "peak / output",
]


def precisions(device: torch.device) -> list[str]:
    """fp32, plus the autocast dtypes the device runs well."""
    return ["fp32", "fp16 autocast", "bf16 autocast"] if device.type == "cuda" else ["fp32", "bf16 autocast"]


def seed_port(folder: str | None):
    """The sift-flow-gpu port's ``SiftFlowTorch`` class from ``folder`` (``None``: not measured)."""
    if folder is None:
        return None
    if not (Path(folder) / "sift_flow_torch.py").is_file():
        raise SystemExit(f"--seed-port {folder}: no sift_flow_torch.py there (clone hmorimitsu/sift-flow-gpu)")
    sys.path.insert(0, str(Path(folder).resolve()))
    return importlib.import_module("sift_flow_torch").SiftFlowTorch


def measure_peer(peer, ours, device: torch.device) -> tuple[float, float]:
    """A peer's median time and ours again, interleaved, so their ratio holds on a noisy machine."""
    with torch.no_grad():
        return median_ms(peer, ours, device=device, repeats=3 if device.type == "cpu" else 10)


def measure_row(
    device: torch.device, image: torch.Tensor, step: int, batch: int, precision: str, seed_folder: str | None = None
) -> list[object]:
    """One row of the forward table: ours, the floor, the peers, and peak memory, measured interleaved."""
    descriptor = SIFTFlowDescriptor(cell_size=2, step_size=step).to(device)
    images = image.to(device).expand(batch, -1, -1, -1).contiguous()
    autocast_dtype = PRECISIONS[precision]
    autocast = torch.autocast(device.type, dtype=autocast_dtype) if autocast_dtype else contextlib.nullcontext()
    repeats = 20 if device.type == "cuda" else 7
    with torch.no_grad(), autocast:
        out = descriptor(images)
        shape, out_dtype = out.shape, out.dtype
        del out
        ours, floor = median_ms(
            lambda: descriptor(images),
            lambda: torch.empty(shape, dtype=out_dtype, device=device).fill_(1),
            device=device,
            repeats=repeats,
        )
        peak = peak_added_bytes(lambda: descriptor(images), device)
    nan = float("nan")
    kornia_ms, kornia_ours, seed_ms, seed_ours = nan, nan, nan, nan
    if autocast_dtype is None:
        kornia_sift = kornia.feature.DenseSIFTDescriptor(spatial_bin_size=2, stride=step, padding=3).to(device)
        gray = kornia.color.rgb_to_grayscale(images)
        kornia_ms, kornia_ours = measure_peer(lambda: kornia_sift(gray), lambda: descriptor(images), device)
        port = seed_port(seed_folder)
        if port is not None:
            # The port takes H x W x C arrays in [0, 255] and keeps its buffers between calls of one shape.
            seed_sift = port(cell_size=2, step_size=step, cuda=device.type == "cuda")
            frames = [np.ascontiguousarray(frame.permute(1, 2, 0).cpu().numpy() * 255) for frame in images]
            seed_ms, seed_ours = measure_peer(
                lambda: seed_sift.extract_descriptor(frames), lambda: descriptor(images), device
            )
    output_mib = shape.numel() * torch.finfo(out_dtype).bits / 8 / MIB
    return [
        step,
        batch,
        precision,
        ours,
        floor,
        ours / floor,
        kornia_ms,
        kornia_ms / kornia_ours,
        seed_ms,
        seed_ms / seed_ours,
        peak / MIB,
        output_mib,
        peak / MIB / output_mib,
    ]


def forward_table(device: torch.device, quick: bool, seed_folder: str | None) -> list[list[object]]:
    """The forward table's rows (printed, and returned for ``--plot``).

    On the CPU each row runs in a fresh process: the C allocator's state (which freed pages it
    kept) changes what a fresh buffer costs, and rows measured after other rows drift."""
    batches = ([1, 4] if quick else [1, 2, 4, 8]) if device.type == "cuda" else ([1, 4] if quick else [1, 2, 4])
    rows = []
    image, _ = benchmark_image()
    for step in (1, 2):
        for batch in batches:
            for precision in precisions(device)[: 1 if quick else None]:
                if device.type == "cuda":
                    rows.append(measure_row(device, image, step, batch, precision, seed_folder))
                    continue
                command = [sys.executable, __file__, "--row", json.dumps([step, batch, precision, seed_folder])]
                result = subprocess.run(command, check=True, capture_output=True, text=True)
                rows.append(json.loads(result.stdout.strip().splitlines()[-1]))
    print_table(f"Forward, {device.type} ({_device_name(device)}), 436 x 1024 RGB, cell_size 2", HEADER, rows)
    return rows


def plot_forward(path: Path, tables: dict[str, list[list[object]]], source: str) -> None:
    """fp32 time against batch size, ours beside the floor and the peers, a panel per device and step."""
    rows = [[device, *row] for device, device_rows in tables.items() for row in device_rows if row[2] == "fp32"]
    plot_table(
        path,
        ["device", *HEADER],
        rows,
        x="batch",
        y=["ours ms", "floor ms", "kornia ms", "seed port ms"],
        panel=["device", "step"],
        title=f"SIFT Flow descriptor, fp32, {source} 436 x 1024, cell size 2 (medians)",
        y_label="ms per call",
        log_y=True,
    )


def compile_table(device: torch.device, image: torch.Tensor) -> None:
    descriptor = SIFTFlowDescriptor(cell_size=2, step_size=1).to(device)
    compiled = torch.compile(descriptor, fullgraph=True)
    rows = []
    for batch in (1, 4):
        images = image.to(device).expand(batch, -1, -1, -1).contiguous()
        with torch.no_grad():
            compiled(images)  # compile outside the timing
            eager_ms, compiled_ms = median_ms(
                lambda: descriptor(images),  # noqa: B023
                lambda: compiled(images),  # noqa: B023
                device=device,
            )
            difference = (compiled(images) - descriptor(images)).abs().amax(dim=1)
        differing = 100 * (difference > 1e-5).double().mean().item()
        rows.append([batch, eager_ms, compiled_ms, compiled_ms / eager_ms, differing])
    print_table(
        f"torch.compile(fullgraph=True) against eager, {device.type}, 436 x 1024 RGB, step 1",
        ["batch", "eager ms", "compiled ms", "compiled / eager", "% descriptors > 1e-5 apart"],
        rows,
    )
    print(
        "\nDescriptors differ only where two colour channels' gradient magnitudes tie to the last bit\n"
        "(8-bit images have many): a different rounding order picks another channel, as in the\n"
        "reference data's `tied` mask. Elsewhere the two agree to about 5e-7."
    )


def backward_table(device: torch.device) -> None:
    """Forward + backward for batch 8 at 256 x 256: time and the peak memory during backward."""
    from siftflow_nn.synthetic import textured_image

    images = torch.stack([textured_image(256, 256, seed=seed) for seed in range(8)]).to(device)
    descriptor = SIFTFlowDescriptor().to(device)
    weights = torch.rand(1, 128, 1, 1, device=device)

    def forward_backward() -> None:
        leaf = images.clone().requires_grad_(True)
        (descriptor(leaf) * weights).sum().backward()

    (milliseconds,) = median_ms(forward_backward, device=device)
    leaf = images.clone().requires_grad_(True)
    output = descriptor(leaf)
    loss = (output * weights).sum()
    output_bytes = output.numel() * output.element_size()
    peak_backward = peak_added_bytes(loss.backward, device)
    forward_peak = peak_added_bytes(lambda: descriptor(images.clone().requires_grad_(True)), device)
    print_table(
        f"Forward + backward, {device.type}, batch 8 x 3 x 256 x 256 fp32",
        [
            "fwd+bwd ms",
            "output MiB",
            "forward peak added MiB",
            "backward peak added MiB",
            "backward peak / output",
        ],
        [[milliseconds, output_bytes / MIB, forward_peak / MIB, peak_backward / MIB, peak_backward / output_bytes]],
    )


def _device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    threads = torch.get_num_threads()
    return f"{threads} thread{'' if threads == 1 else 's'}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", choices=["cpu", "cuda"], action="append", help="default: cpu and cuda if present")
    parser.add_argument("--quick", action="store_true", help="batch 1 and 4, fp32 only, no torch.compile")
    parser.add_argument("--seed-port", metavar="DIR", help="also time sift-flow-gpu's sift_flow_torch.py from DIR")
    add_plot_argument(parser)
    parser.add_argument("--row", help=argparse.SUPPRESS)  # internal: one CPU row, printed as JSON
    args = parser.parse_args()
    if args.row:
        step, batch, precision, seed_folder = json.loads(args.row)
        image, _ = benchmark_image()
        print(json.dumps(measure_row(torch.device("cpu"), image, step, batch, precision, seed_folder)))
        return
    seed_port(args.seed_port)  # a wrong folder fails now, not after the first rows
    devices = args.device or (["cpu", "cuda"] if torch.cuda.is_available() else ["cpu"])
    image, source = benchmark_image()
    print(f"input: {source}, torch {torch.__version__}, kornia {kornia.__version__}")
    tables = {}
    for name in devices:
        device = torch.device(name)
        tables[f"{name} ({_device_name(device)})"] = forward_table(device, args.quick, args.seed_port)
        backward_table(device)
        if not args.quick:
            compile_table(device, image)
    if args.plot:
        plot_forward(args.plot, tables, source)
        print(f"\nfigure: {args.plot}")


if __name__ == "__main__":
    main()
