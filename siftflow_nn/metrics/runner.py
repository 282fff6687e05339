"""Scoring a benchmark's pairs: each pair's image metrics and OCR, in this process and in workers.

The work is a list of jobs: per pair, its image metrics (MS-SSIM, LD, Li-D and AD from one flow,
``docunet_evaluation``) and, with OCR, the text of its result and, once a scan, the text of its
scan. With ``jobs > 1``, ``jobs - 1`` spawned workers and this process (on a share of the CPU
threads each) take the jobs from one queue, in order, this process working in its main thread
between looks at the workers and sending each up to two jobs ahead, so that a slow pair holds up
no other. A pair is done when its jobs are: ``BenchmarkRun`` yields its row, or why it failed.

Workers end with this process: each asks Linux to kill it when its parent dies
(``PR_SET_PDEATHSIG``) and watches its parent too (elsewhere, and should the signal be lost), so
that SIGKILL or SIGTERM of the command leaves no worker (and, once they are gone, no resource
tracker) behind. A worker that dies (killed by the OOM killer, say) ends the run with
``WorkerDied``: the rows written so far are kept.

Before any work, ``plan_memory`` reads the images' sizes: an image over the pixel budget is
refused with the memory it would take, and ``jobs`` is lowered to what the available memory holds
(a pair's peak grows with its images' pixels: measured, see ``PAIR_BYTES``).
"""

from __future__ import annotations

import collections
import contextlib
import ctypes
import multiprocessing
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import NamedTuple

import torch
from PIL import Image

from siftflow_nn.io import ImageReadError, printable_name, read_image, write_image
from siftflow_nn.metrics.docunet import benchmark_pair, docunet_evaluation
from siftflow_nn.metrics.layouts import Pair
from siftflow_nn.metrics.results import Row, Source, file_sha256

__all__ = [
    "BenchmarkRun",
    "Failed",
    "MemoryPlan",
    "PixelBudgetError",
    "RunOptions",
    "Scored",
    "WorkerDied",
    "pair_memory",
    "plan_memory",
    "sources",
]

# A pair's peak memory over its process's own: PAIR_BYTES (the benchmark-size stages) plus
# PIXEL_BYTES per pixel of its larger image (its resize to the benchmark's size is the peak), and a
# process's own once it has scored a pair (torch, the compiled kernels). Measured with the peak RSS of
# one process scoring one pair: 0.22 GB over its own for two 6 Mpx images, 1.1 GB for a 24 Mpx
# photo (with a 0.9 Mpx or a 24 Mpx scan), 430 MB its own (490 MB at a small pair's peak); the
# issue's 108 Mpx photo peaked at 5.8 GB.
PAIR_BYTES = 64 << 20
PIXEL_BYTES = 48
PROCESS_BYTES = 500 << 20
IMAGE_METRICS = ("ms_ssim", "ld", "li_d", "ad")


class WorkerDied(RuntimeError):
    """A worker process ended while it held a job (killed by the OOM killer, say): one line."""


class PixelBudgetError(ValueError):
    """An image with more pixels than the run allows: one line with the memory it would take."""


class RunOptions(NamedTuple):
    """How a run scores its pairs.

    Attributes:
        layout: the layout's name (``"docunet"``, ..., ``"pairs"``), recorded with each row.
        device: where the image metrics run (``"cpu"``, ``"cuda:0"``).
        ocr: the OCR protocol (``"doctr"``, ``"uvdoc"``) or None.
        ocr_keys: the pairs (``Pair.key``) whose results are OCR'd.
        tesseract: Tesseract's version, recorded with each OCR'd row.
        figures: the folder for each pair's flow figure, or None.
        max_pixels: the most pixels an image may have.
    """

    layout: str
    device: str = "cpu"
    ocr: str | None = None
    ocr_keys: frozenset[str] = frozenset()
    tesseract: str | None = None
    figures: Path | None = None
    max_pixels: int = 50_000_000

    def ocr_of(self, pair: Pair) -> bool:
        return self.ocr is not None and pair.key in self.ocr_keys

    def photo_of(self, pair: Pair) -> Path | None:
        """The photo whose size the pair's OCR reads, or None (only protocols that resize read one)."""
        from siftflow_nn.metrics.ocr import OCR_PROTOCOLS

        return pair.photo if self.ocr_of(pair) and OCR_PROTOCOLS[self.ocr].resize_to_photo else None

    def settings(self, pair: Pair) -> str:
        """How the pair's row is computed, as the results file records it."""
        metrics = IMAGE_METRICS + (("ed", "cer") if self.ocr_of(pair) else ())
        parts = [f"layout={self.layout}", f"device={torch.device(self.device).type}", f"metrics={','.join(metrics)}"]
        if pair.rotated:
            parts.append("rotated=180")
        if pair.scan_resizes != 1:
            parts.append(f"scan_resizes={pair.scan_resizes}")
        if self.ocr_of(pair):
            parts += [f"ocr={self.ocr}", f"tesseract={self.tesseract}"]
        return "; ".join(parts)


def sources(pairs: Sequence[Pair], options: RunOptions) -> list[Source]:
    """What each pair's row must be computed from (``siftflow_nn.metrics.results.Source``)."""
    listed = []
    for pair in pairs:
        photo = options.photo_of(pair)
        name = printable_name(photo.name) if photo is not None else ""
        listed.append(Source(pair.key, printable_name(pair.scan.name), name, options.settings(pair),
                             (pair.result, pair.scan, photo)))  # fmt: skip
    return listed


# --- memory --------------------------------------------------------------------------------------


class MemoryPlan(NamedTuple):
    """What ``plan_memory`` found: the largest pair's estimated peak, and how many jobs fit."""

    pair_bytes: int
    largest: Pair | None
    jobs: int
    available: int | None


def pair_memory(pixels: int) -> int:
    """The estimated peak memory of scoring a pair whose larger image holds ``pixels`` pixels,
    over its process's own (``PROCESS_BYTES``).

    Example:
        >>> round((pair_memory(108_000_000) + PROCESS_BYTES) / 1e9, 1)  # a 108 Mpx photo: 5.8 GB measured
        5.8
    """
    return PAIR_BYTES + PIXEL_BYTES * pixels


def plan_memory(pairs: Sequence[Pair], jobs: int, max_pixels: int, available: int | None) -> MemoryPlan:
    """Check every image against the pixel budget and fit ``jobs`` to the memory available.

    Images whose header cannot be read are passed over (their pair fails when it is scored, naming
    the file).

    Raises:
        PixelBudgetError: an image has more than ``max_pixels`` pixels (the message gives the
            memory it would take and the option that allows it), or one pair needs more memory
            than is available.
    """
    largest, largest_pixels = None, 0
    for pair in pairs:
        pixels = 0
        for path in (pair.result, pair.scan):
            size = _image_size(path)
            if size is None:
                continue
            width, height = size
            if width * height > max_pixels:
                raise PixelBudgetError(
                    f"{path}: {width} x {height} = {width * height} pixels, over the budget of {max_pixels} "
                    f"(--max-pixels): scoring it needs about {_gib(pair_memory(width * height))} of memory; "
                    f"give --max-pixels {width * height} to score it anyway"
                )
            pixels = max(pixels, width * height)
        if pixels > largest_pixels:
            largest, largest_pixels = pair, pixels
    need = pair_memory(largest_pixels)
    fit = jobs
    if available is not None:
        # this process's own memory is already taken; each further job starts a worker of its own
        fit = max(0, min(jobs, 1 + (available - need) // (need + PROCESS_BYTES))) if available >= need else 0
        if fit == 0:
            raise PixelBudgetError(
                f"{largest.result}: scoring it needs about {_gib(need)} of memory and {_gib(available)} is "
                f"available: free memory, or score the pairs with large images apart"
            )
    return MemoryPlan(need, largest, fit, available)


def _image_size(path: Path) -> tuple[int, int] | None:
    try:
        with Image.open(path) as image:
            return image.size
    except (OSError, SyntaxError, Image.DecompressionBombError):
        return None


def _gib(count: int) -> str:
    return f"{count / 2**30:.1f} GiB"


# --- the jobs (run in this process or in a worker) -----------------------------------------------


class ImageOutcome(NamedTuple):
    scores: tuple[float, ...] | None  # IMAGE_METRICS, or None when the pair failed
    error: str | None
    hashes: tuple[str, str]
    seconds: float


class TextOutcome(NamedTuple):
    text: str | None
    error: str | None
    photo_hash: str
    seconds: float


class ImageJob(NamedTuple):
    """A pair's image metrics (and its flow figure)."""

    pair: Pair
    device: str
    max_pixels: int
    figure: Path | None

    def run(self) -> ImageOutcome:
        start = time.perf_counter()
        pair = self.pair
        try:
            hashes = (_sha256(pair.result), _sha256(pair.scan))
            scores = self._scores()
        except (ImageReadError, ValueError) as error:
            # a read error names its file; others (a page too narrow, ...) get the pair's names
            message = str(error) if isinstance(error, ImageReadError) else f"{pair.key}: {error}"
            return ImageOutcome(None, message, ("", ""), time.perf_counter() - start)
        return ImageOutcome(scores, None, hashes, time.perf_counter() - start)

    def _scores(self) -> tuple[float, ...]:
        pair, device = self.pair, torch.device(self.device)
        # as MATLAB's imread gives them to eval.m: 8-bit as uint8, 16-bit as uint16, no EXIF turn
        result, scan = (read_image(path, self.max_pixels, uint8=True, orient=False, uint16=True).to(device)
                        for path in (pair.result, pair.scan))  # fmt: skip
        if pair.rotated:
            result = result.rot90(2, dims=(-2, -1))  # MATLAB's rot90(A, 2), as DocTr's script has it
        for _ in range(pair.scan_resizes - 1):  # UVDoc's evalScript.m scores later photos on its resized scan
            scan = benchmark_pair(scan, scan)[1][0]
        evaluation = docunet_evaluation(result, scan)
        if self.figure is not None:
            from siftflow_nn.metrics.figures import flow_figure

            write_image(self.figure, flow_figure(evaluation.scan[0], evaluation.flow[0]))
        return tuple(float(value[0]) for value in evaluation.scores)


class TextJob(NamedTuple):
    """The OCR text of a scan, or of a result (resized to its photo's size where the protocol says so)."""

    path: Path
    protocol: str
    is_scan: bool
    photo: Path | None = None
    rotated: bool = False

    def run(self) -> TextOutcome:
        from siftflow_nn.metrics.ocr import ocr_scan, ocr_text

        start = time.perf_counter()
        try:
            if self.is_scan:
                return TextOutcome(ocr_scan(self.path, self.protocol), None, "", time.perf_counter() - start)
            photo_size, photo_hash = None, ""
            if self.photo is not None:
                photo_hash, photo_size = _sha256(self.photo), _image_size(self.photo)
                if photo_size is None:
                    raise ImageReadError(f"{self.photo}: not a readable image (the photo whose size OCR needs)")
            with Image.open(self.path) as image:
                # the result as the original scripts open it, turned as it was for the image metrics
                text = ocr_text(image.rotate(180) if self.rotated else image, self.protocol, photo_size)
        except (OSError, ValueError, RuntimeError) as error:  # pytesseract's TesseractError is a RuntimeError
            where = "" if str(self.path) in str(error) else f"{self.path}: "
            return TextOutcome(None, f"{where}OCR failed ({error})", "", time.perf_counter() - start)
        return TextOutcome(text, None, photo_hash, time.perf_counter() - start)


def _sha256(path: Path) -> str:
    try:
        return file_sha256(path)
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except OSError as error:
        raise ImageReadError(f"{path}: cannot be read ({error.strerror})") from None


# --- the run -------------------------------------------------------------------------------------


class Scored(NamedTuple):
    pair: Pair
    row: Row
    seconds: float  # the pair's image metrics, and its OCR when it had any


class Failed(NamedTuple):
    pair: Pair
    message: str


class _PairState:
    """A pair's outcomes so far."""

    def __init__(self, ocr: bool) -> None:
        self.image: ImageOutcome | None = None
        self.text: TextOutcome | None = None
        self.ocr = ocr


class BenchmarkRun:
    """Score ``pairs``: iterate for a ``Scored`` or ``Failed`` per pair, in the order they finish.

    Args:
        pairs: the pairs to score.
        options: ``RunOptions``.
        jobs: pairs (or OCR images) worked on at once: this process and ``jobs - 1`` workers.

    The seconds spent on the image metrics and on OCR (summed over the jobs) are kept in
    ``image_seconds`` and ``ocr_seconds``, the OCR'd images counted in ``ocr_images``.
    """

    def __init__(self, pairs: Sequence[Pair], options: RunOptions, jobs: int = 1) -> None:
        self.pairs, self.options, self.jobs = list(pairs), options, jobs
        self.image_seconds = self.ocr_seconds = 0.0
        self.ocr_images = 0

    def _jobs(self) -> list[tuple[str, object]]:
        """``(the pair's key or the scan's path, job)``: each pair's image job, then its OCR."""
        listed, scans = [], set()
        options = self.options
        for pair in self.pairs:
            figure = options.figures / f"{Path(pair.key).stem}.png" if options.figures is not None else None
            listed.append((pair.key, ImageJob(pair, options.device, options.max_pixels, figure)))
            if options.ocr_of(pair):
                if pair.scan not in scans:
                    scans.add(pair.scan)
                    listed.append((str(pair.scan), TextJob(pair.scan, options.ocr, True)))
                job = TextJob(pair.result, options.ocr, False, options.photo_of(pair), pair.rotated)
                listed.append((pair.key, job))
        return listed

    def __iter__(self) -> Iterator[Scored | Failed]:
        options = self.options
        state = {pair.key: _PairState(options.ocr_of(pair)) for pair in self.pairs}
        by_key = {pair.key: pair for pair in self.pairs}
        scan_texts: dict[str, TextOutcome] = {}
        waiting: dict[str, list[str]] = collections.defaultdict(list)  # scan -> pairs waiting for its text
        for pair in self.pairs:
            if options.ocr_of(pair):
                waiting[str(pair.scan)].append(pair.key)
        with contextlib.closing(_run(self._jobs(), self.jobs)) as outcomes:
            for (key, job), outcome in outcomes:
                if isinstance(job, ImageJob):
                    self.image_seconds += outcome.seconds
                    state[key].image = outcome
                    ready = [key]
                else:
                    self.ocr_seconds += outcome.seconds
                    self.ocr_images += 1
                    if job.is_scan:
                        scan_texts[key] = outcome
                        ready = waiting[key]
                    else:
                        state[key].text = outcome
                        ready = [key]
                for name in ready:
                    event = self._finished(by_key[name], state[name], scan_texts)
                    if event is not None:
                        del state[name]
                        yield event

    def _finished(self, pair: Pair, progress: _PairState, scan_texts: dict[str, TextOutcome]) -> Scored | Failed | None:
        """The pair's event once all its jobs are done, else None."""
        scan_text = scan_texts.get(str(pair.scan))
        if progress.image is None or progress.ocr and (progress.text is None or scan_text is None):
            return None
        image = progress.image
        errors = [
            outcome.error for outcome in (image, progress.text, scan_text) if outcome is not None and outcome.error
        ]
        if errors:
            return Failed(pair, errors[0])
        ed = cer = None
        seconds = image.seconds
        if progress.ocr:
            from siftflow_nn.metrics.ocr import edit_scores

            try:
                ed, cer = edit_scores(progress.text.text, scan_text.text, self.options.ocr)
            except ValueError as error:
                return Failed(pair, f"{pair.key}: {error}")
            seconds += progress.text.seconds
        photo = self.options.photo_of(pair)
        row = Row(
            pair.key,
            printable_name(pair.scan.name),
            printable_name(photo.name) if photo is not None else "",
            *image.scores,
            None if ed is None else float(ed),
            cer,
            *image.hashes,
            progress.text.photo_hash if progress.text is not None else "",
            self.options.settings(pair),
        )
        return Scored(pair, row, seconds)


def _run(jobs: list[tuple[str, object]], count: int) -> Iterator[tuple[tuple[str, object], object]]:
    """``(job, its outcome)`` as they finish, on this process and ``count - 1`` workers.

    This process works in its main thread, between looks at the workers' pipes: no thread of its
    own can be left inside torch's or the kernels' code when the process ends (interrupted, or a worker
    died), which aborts a process. Each worker holds up to two jobs, so that it has the next at
    hand while this process is busy with its own.
    """
    if count == 1 or len(jobs) <= 1:
        for item in jobs:
            yield item, item[1].run()
        return
    all_threads = torch.get_num_threads()
    threads = max(1, all_threads // count)
    queue = collections.deque(enumerate(jobs))
    pool = _Pool(count - 1, threads)
    try:
        torch.set_num_threads(threads)  # this process's share
        remaining = len(jobs)
        while remaining:
            for index, outcome in pool.collect(queue, jobs, block=not queue):
                remaining -= 1
                yield jobs[index], outcome
            if queue:
                index, (_, job) = queue.popleft()
                outcome = job.run()
                remaining -= 1
                yield jobs[index], outcome
    finally:
        torch.set_num_threads(all_threads)
        pool.close()


class _Crash(NamedTuple):
    traceback: str


class _Worker:
    def __init__(self, context, threads: int) -> None:
        self.connection, theirs = context.Pipe()
        self.process = context.Process(target=_serve, args=(theirs, threads, os.getpid()), daemon=True,
                                       name="benchmark-worker")  # fmt: skip
        self.process.start()
        theirs.close()
        self.ready = False
        self.held: collections.deque[int] = collections.deque()  # the jobs sent, oldest (under way) first


class _Pool:
    """Spawned workers, each fed its jobs over its own pipe (no shared queue, no feeder thread: a
    worker's death is seen at once on its sentinel, with the job it held)."""

    HELD = 2  # jobs a worker holds at most: the one under way and the next

    def __init__(self, count: int, threads: int) -> None:
        # spawn, not fork: a forked copy of a process running torch's or OpenMP's threads can hang
        context = multiprocessing.get_context("spawn")
        self.workers = [_Worker(context, threads) for _ in range(count)]
        self.alive = {worker.connection: worker for worker in self.workers}
        self.alive.update({worker.process.sentinel: worker for worker in self.workers})

    def collect(self, queue: collections.deque, jobs: list, block: bool) -> Iterator[tuple[int, object]]:
        """The outcomes the workers have sent (waiting for one when ``block``), and more jobs for them."""
        if block and not self.alive:
            raise RuntimeError("no worker is left to wait for")  # not reached: a worker ends holding no job
        for ready in wait(list(self.alive), timeout=None if block else 0):
            worker = self.alive.get(ready)
            if worker is None:
                continue  # ended earlier in this batch
            while worker.connection.poll():  # messages first, even from a worker that ended after sending them
                message = _receive(worker.connection)
                if message is None:
                    break
                if message == "ready":
                    worker.ready = True
                else:
                    index, outcome = message
                    worker.held.popleft()
                    yield index, outcome
            if not worker.process.is_alive() or ready is worker.process.sentinel:
                self._ended(worker, jobs)
        for worker in self.workers:
            while worker.ready and worker.connection in self.alive and len(worker.held) < self.HELD and queue:
                index, (_, job) = queue.popleft()
                worker.held.append(index)
                worker.connection.send((index, job))

    def _ended(self, worker: _Worker, jobs: list) -> None:
        """A worker's process ended: fine when it held no job, else the run ends."""
        worker.process.join(5)
        for key in (worker.connection, worker.process.sentinel):
            self.alive.pop(key, None)
        if worker.held:
            code = worker.process.exitcode
            if code is not None and code < 0:
                how = f"was killed by {signal.Signals(-code).name}" + (" (out of memory?)" if -code == 9 else "")
            else:
                how = f"ended with status {code}"
            raise WorkerDied(
                f"a worker process (pid {worker.process.pid}) {how} while working on {jobs[worker.held[0]][0]}"
            )

    def close(self) -> None:
        """End the workers: at once (they may hold jobs when the run was interrupted)."""
        for worker in self.workers:
            if worker.process.is_alive():
                worker.process.terminate()
        for worker in self.workers:
            worker.process.join(2)
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join(2)
            worker.connection.close()


def _receive(connection: Connection):
    """The next message, or None when the pipe is closed; a worker's crash raised with its traceback."""
    try:
        message = connection.recv()
    except (EOFError, OSError):
        return None
    if isinstance(message, _Crash):
        raise RuntimeError(f"a job failed in a worker process:\n{message.traceback}")
    return message


def _serve(connection: Connection, threads: int, parent: int) -> None:
    """A worker: jobs in, outcomes out, until its pipe closes or its parent is gone."""
    _end_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it ends us
    torch.set_num_threads(threads)
    connection.send("ready")
    while True:
        try:
            index, job = connection.recv()
        except (EOFError, OSError):
            return
        try:
            connection.send((index, job.run()))
        except BaseException:
            connection.send(_Crash(traceback.format_exc()))
            return


def _end_with_parent(parent: int) -> None:
    """Die with the parent process: Linux's parent-death signal, and a thread that watches."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):  # no prctl: the watch below is enough
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(0.25)
        os._exit(1)

    threading.Thread(target=watch, name="benchmark-parent-watch", daemon=True).start()
