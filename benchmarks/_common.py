"""Shared pieces of the benchmark scripts: the input image, a median timer, a thread count, peak-memory
probes, tables."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import torch

SINTEL = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "sintel_alley_1"


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's ops (and so the compiled kernels, which take torch's count) on ``count`` threads, then
    the count as it was."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def benchmark_image(height: int = 436, width: int = 1024, frame: int = 1) -> tuple[torch.Tensor, str]:
    """A 1 x 3 x H x W float image in [0, 1]: the Sintel frame the seed used when present, else synthetic."""
    path = SINTEL / f"frame_{frame:04d}.png"
    if path.exists() and (height, width) == (436, 1024):
        from siftflow_nn.io import read_image

        return read_image(path)[None], f"Sintel alley_1 frame {frame}"
    from siftflow_nn.synthetic import textured_image

    return textured_image(height, width, channels=3, seed=frame)[None], "synthetic texture"


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def median_ms(*fns: Callable[[], object], device: torch.device, repeats: int = 5, warmup: int = 1) -> list[float]:
    """Median wall time in milliseconds of each of ``fns``, called in turn (a, b, a, b, ...).

    Interleaving makes peers see the same machine state (memory, other load), so their ratio holds
    on a noisy machine even when the absolute times drift.
    """
    for fn in fns:
        for _ in range(warmup):
            fn()
    synchronize(device)
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, samples in zip(fns, times):
            start = time.perf_counter()
            fn()
            synchronize(device)
            samples.append(time.perf_counter() - start)
    return [1000 * statistics.median(samples) for samples in times]


def _read_status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def peak_added_bytes(fn: Callable[[], object], device: torch.device) -> int:
    """Peak memory that one call of ``fn`` adds to what the process held just before it.

    On CUDA: the caching allocator's peak. On the CPU: the process's resident-set high-water mark,
    reset through ``/proc/self/clear_refs`` (Linux), minus the resident set before the call. The
    result of ``fn`` is held until the peak is read, as a caller would hold it.
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
        result = fn()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - before
        del result
        return peak
    Path("/proc/self/clear_refs").write_text("5")
    before = _read_status_kib("VmRSS")
    result = fn()
    peak = _read_status_kib("VmHWM") - before
    del result
    return peak * 1024


def print_table(title: str, header: list[str], rows: list[list[object]]) -> None:
    """Print a Markdown table (so the README can quote it as is)."""
    print(f"\n### {title}\n")
    print("| " + " | ".join(header) + " |")
    print("|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|")
    for row in rows:
        print("| " + " | ".join(_format(cell) for cell in row) + " |")


def _format(cell: object) -> str:
    if isinstance(cell, float):
        return f"{cell:.2f}" if abs(cell) < 100 else f"{cell:.0f}"
    return str(cell)
