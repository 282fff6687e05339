"""Progress of long work on stderr, for the command line and the dataset extraction."""

from __future__ import annotations

import sys
import time


class Progress:
    """A tqdm bar (count, rate, ETA) on a terminal; elsewhere (a log, a pipe) a line every few
    seconds and at the end, so that long work always shows it is alive."""

    def __init__(self, total: int, description: str, unit: str, interval: float = 5.0) -> None:
        self.total, self.description, self.unit, self.interval = total, description, unit, interval
        self.done, self.start = 0, time.perf_counter()
        self.last_line = self.start
        self.bar = None
        if sys.stderr.isatty():
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=description, unit=unit, dynamic_ncols=True)

    def update(self, count: int = 1, note: str = "") -> None:
        self.done += count
        if self.bar is not None:
            if note:
                self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(count)
            return
        now = time.perf_counter()
        if now - self.last_line >= self.interval or self.done >= self.total:
            self.last_line = now
            elapsed = now - self.start
            rate = f", {self.done / elapsed:.1f} {self.unit}s/s" if elapsed > 0 and self.done else ""
            suffix = f", {note}" if note else ""
            line = f"{self.description}: {self.done}/{self.total} {self.unit}s in {elapsed:.1f} s{rate}{suffix}"
            print(line, file=sys.stderr)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
