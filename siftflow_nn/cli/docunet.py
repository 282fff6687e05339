"""``siftflow-nn docunet``: the DocUNet benchmark's MS-SSIM, LD and Li-D over a folder of results.

The original ``eval.m`` pairs each unwarped photo ``{i}_{k} copy_rec.png`` with the scan
``{i}.png`` (65 scans, 2 photos each) and averages over the pairs. Here every pair found is scored
in that order; a pair that cannot be (a missing or unreadable file) is reported, naming the file,
and the rest go on. With ``--csv`` each pair's scores are written as soon as they exist, and a
second run with the same file skips the pairs already in it: an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import collections
import csv
import math
import multiprocessing
import os
import queue
import re
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import NamedTuple

import torch

from siftflow_nn._progress import Progress
from siftflow_nn.cli._arguments import UsageError, add_device_option, device_from, output_path, positive_int
from siftflow_nn.io import ImageReadError, atomic_path, read_image

_PHOTO = re.compile(r"^(?P<scan>.+)_(?P<index>\d+) copy_rec\.(?:png|jpe?g|bmp|tiff?|webp)$", re.IGNORECASE)
_SCAN_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
_HEADER = ["unwarped", "scan", "ms_ssim", "ld", "li_d"]


def register(commands: argparse._SubParsersAction) -> None:
    command = commands.add_parser(
        "docunet",
        allow_abbrev=False,
        help="the DocUNet benchmark's MS-SSIM, LD and Li-D over a folder of unwarped photos",
        description="Score unwarped photos REC_DIR/'{i}_{k} copy_rec.png' against the scans SCAN_DIR/'{i}.png' "
        "as the DocUNet benchmark's eval.m does (MS-SSIM, Local Distortion, Line Distortion), and print "
        "each pair's scores and the means. Exit status 1 when some pair could not be scored.",
    )
    command.add_argument("rec_dir", metavar="REC_DIR", help="the unwarped photos, '{i}_{k} copy_rec.png'")
    command.add_argument("scan_dir", metavar="SCAN_DIR", help="the scans, '{i}.png'")
    command.add_argument(
        "--csv",
        metavar="FILE",
        help="write each pair's scores here as they come; an existing FILE from an earlier run is resumed "
        "(its pairs are not scored again)",
    )
    command.add_argument(
        "--jobs",
        type=positive_int,
        default=1,
        help="pairs scored at once, on a share of the CPU threads each: this process and N - 1 more "
        "(default 1: one pair at a time on all of them)",
    )
    add_device_option(command)
    command.set_defaults(handler=docunet)


class _Pair(NamedTuple):
    photo: Path
    scan: Path | None  # None: no scan of that name


class _Scores(NamedTuple):
    ms_ssim: float
    ld: float
    li_d: float


def docunet(args: argparse.Namespace) -> int:
    rec_dir, scan_dir = (_folder(text, name) for text, name in ((args.rec_dir, "REC_DIR"), (args.scan_dir, "SCAN_DIR")))
    csv_path = output_path(args.csv, [".csv"], "--csv")[0] if args.csv else None
    device = device_from(args.device)
    if args.jobs > 1 and device.type != "cpu":
        raise UsageError(f"argument --jobs: runs pairs in parallel on the CPU; --device is {device}")
    pairs, unpaired_scans = _find_pairs(rec_dir, scan_dir)
    done = _read_results(csv_path) if csv_path is not None and csv_path.exists() else {}
    todo = [pair for pair in pairs if pair.photo.name not in done]
    if done:
        print(f"resuming {csv_path}: {len(pairs) - len(todo)} of {len(pairs)} pairs already scored", file=sys.stderr)
    failures = [f"{scan}: a scan without unwarped photos (no '{scan.stem}_1 copy_rec.png' in {rec_dir})"
                for scan in unpaired_scans]  # fmt: skip
    for failure in failures:
        print(f"siftflow-nn: error: {failure}", file=sys.stderr)
    results = {pair.photo.name: done[pair.photo.name][1] for pair in pairs if pair.photo.name in done}
    writer = _ResultsFile(csv_path, done) if csv_path is not None else None
    progress = Progress(len(todo), "docunet", "pair")
    try:
        for pair, outcome, seconds in _scored(todo, scan_dir, device, args.jobs):
            if isinstance(outcome, Exception):
                # a read error names its file; others (a page too narrow, ...) get the pair's names
                failures.append(
                    str(outcome) if isinstance(outcome, ImageReadError) else f"{pair.photo.name}: {outcome}"
                )
                print(f"siftflow-nn: error: {failures[-1]}", file=sys.stderr)
                progress.update(1, "failed")
                continue
            results[pair.photo.name] = outcome
            if writer is not None:
                writer.append(pair, outcome)
            print(f"{pair.photo.name:<24} {pair.scan.name:<12} MS-SSIM {outcome.ms_ssim:.6f}  LD {outcome.ld:.4f}  "
                  f"Li-D {outcome.li_d:.4f}  ({seconds:.2f} s)", flush=True)  # fmt: skip
            progress.update(1, pair.photo.name)
    finally:
        progress.close()
        if writer is not None:
            writer.close()
    _print_means(list(results.values()), len(pairs) + len(unpaired_scans))
    if failures:
        again = f" with --csv {csv_path} to score only those" if csv_path is not None else ""
        print(f"{len(failures)} failed (listed above): fix them and run again{again}", file=sys.stderr)
        return 1
    return 0


def _folder(text: str, name: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise UsageError(f"argument {name}: {text} is not a folder")
    return path


def _find_pairs(rec_dir: Path, scan_dir: Path) -> tuple[list[_Pair], list[Path]]:
    """Every unwarped photo with its scan (eval.m's order: by scan number, then photo number), and
    the scans no photo refers to."""
    photos = [(match, path) for path in rec_dir.iterdir() if (match := _PHOTO.match(path.name))]
    if not photos:
        raise UsageError(f"argument REC_DIR: {rec_dir} holds no unwarped photos named like '1_1 copy_rec.png'")
    scans = {path.stem: path for path in sorted(scan_dir.iterdir()) if path.suffix.lower() in _SCAN_EXTENSIONS}
    photos.sort(key=lambda item: (_natural(item[0]["scan"]), int(item[0]["index"])))
    pairs = [_Pair(path, scans.get(match["scan"])) for match, path in photos]
    referred = {match["scan"] for match, _ in photos}
    return pairs, [
        path for stem, path in sorted(scans.items(), key=lambda item: _natural(item[0])) if stem not in referred
    ]


def _natural(stem: str) -> tuple:
    return (0, int(stem), "") if stem.isdigit() else (1, 0, stem)


def _scored(pairs: list[_Pair], scan_dir: Path, device, jobs: int) -> Iterator[tuple[_Pair, object, float]]:
    """``(pair, scores or the error that stopped it, seconds)`` for each pair, as they finish.

    With ``jobs > 1`` this process scores pairs too, from the start, while ``jobs - 1`` spawned
    workers import the package (seconds each) and then take pairs as they get free: the pairs
    wait in one queue, so a slow pair holds up no other.
    """
    if jobs == 1:
        for pair in pairs:
            yield (pair, *_timed_score(pair, scan_dir, device))
        return
    waiting, taken = collections.deque(pairs), threading.Lock()
    finished: queue.Queue = queue.Queue()  # (pair, outcome, seconds), or an exception to raise
    stop = threading.Event()

    def next_pair() -> _Pair | None:
        with taken:
            return waiting.popleft() if waiting and not stop.is_set() else None

    def score_here() -> None:
        try:
            while (pair := next_pair()) is not None:
                finished.put((pair, *_timed_score(pair, scan_dir, device)))
        except BaseException as error:  # a bug: raised in the main thread
            finished.put(error)

    def submit_next(pool: ProcessPoolExecutor) -> None:
        if (pair := next_pair()) is not None:
            pool.submit(_timed_score, pair, scan_dir, device).add_done_callback(
                lambda future: report(pool, pair, future)
            )

    def report(pool: ProcessPoolExecutor, pair: _Pair, future) -> None:
        if future.cancelled():
            return
        try:
            finished.put((pair, *future.result()))
        except BaseException as error:  # a worker that died, or a bug in it
            finished.put(error)
            return
        submit_next(pool)

    # spawn, not fork: a forked copy of a process that has started torch's or numba's threads can hang
    all_threads = torch.get_num_threads()
    threads = max(1, all_threads // jobs)
    torch.set_num_threads(threads)  # this process's share
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        jobs - 1, mp_context=context, initializer=torch.set_num_threads, initargs=(threads,)
    ) as pool:
        for _ in range(jobs - 1):
            submit_next(pool)
        here = threading.Thread(target=score_here, name="docunet-scoring", daemon=True)
        here.start()
        try:
            for _ in range(len(pairs)):
                item = finished.get()
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()  # no new pairs: the ones under way finish, the pool waits for its own
            here.join()
            torch.set_num_threads(all_threads)


def _timed_score(pair: _Pair, scan_dir: Path, device) -> tuple[object, float]:
    start = time.perf_counter()
    try:
        scores = _score(pair, scan_dir, device)
    except (ImageReadError, ValueError) as error:
        return error, time.perf_counter() - start
    return scores, time.perf_counter() - start


def _score(pair: _Pair, scan_dir: Path, device) -> _Scores:
    from siftflow_nn.metrics.docunet import docunet_metrics  # torch's heavy part: only when scoring

    if pair.scan is None:
        stem = _PHOTO.match(pair.photo.name)["scan"]
        raise ImageReadError(f"{pair.photo.name}: its scan {scan_dir / (stem + '.png')} is missing")
    photo, scan = (read_image(path, uint8=True, orient=False).to(device) for path in (pair.photo, pair.scan))
    scores = docunet_metrics(photo, scan)
    return _Scores(*(float(value[0]) for value in scores[:3]))


def _print_means(results: list[_Scores], total: int) -> None:
    if not results:
        print(f"no pair scored (of {total})")
        return
    means = [math.fsum(values) / len(results) for values in zip(*results)]
    print(f"mean over {len(results)} of {total} pairs: MS-SSIM {means[0]:.6f}  LD {means[1]:.4f}  Li-D {means[2]:.4f}")


# --- the results file ----------------------------------------------------------------------------


def _read_results(path: Path) -> dict[str, tuple[str, _Scores]]:
    """The pairs an earlier run scored. A row cut short by an interruption is dropped (and scored
    again); a file that is not ours is refused rather than appended to."""
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            rows = list(csv.reader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise UsageError(f"argument --csv: {path} exists and cannot be read as CSV ({error})") from None
    if not rows or rows[0] != _HEADER:
        raise UsageError(
            f"argument --csv: {path} exists and is not a results file of this command (its first line is not "
            f"{','.join(_HEADER)}); remove it or choose another"
        )
    results = {}
    for row in rows[1:]:
        try:
            if len(row) == len(_HEADER):
                results[row[0]] = (row[1], _Scores(*(float(value) for value in row[2:])))
        except ValueError:
            pass
    return results


class _ResultsFile:
    """The CSV of the scores, rewritten whole once (dropping a row cut short by a crash), then
    appended to row by row, each row flushed to disk before the next pair starts."""

    def __init__(self, path: Path, done: dict[str, tuple[str, _Scores]]) -> None:
        with atomic_path(path) as temporary, open(temporary, "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(_HEADER)
            for name, (scan, scores) in done.items():
                writer.writerow([name, scan, *(repr(value) for value in scores)])
        self.handle = open(path, "a", newline="", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self.writer = csv.writer(self.handle, lineterminator="\n")

    def append(self, pair: _Pair, scores: _Scores) -> None:
        self.writer.writerow([pair.photo.name, pair.scan.name, *(repr(value) for value in scores)])
        self.handle.flush()
        os.fsync(self.handle.fileno())

    def close(self) -> None:
        self.handle.close()
