"""A progress line on stderr for the long passes over big folders (hashing, first decode).

On a terminal it redraws one line at most four times a second; otherwise (a log file,
Prefect's captured output, a test) it writes a line at each quarter, so captured logs
get a handful of lines, not thousands. Small jobs (under `MIN_TOTAL` items) print
nothing. `SEEDTRAIL_PROGRESS=0` turns it off.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import TextIO

MIN_TOTAL = 2000


class Progress:
    def __init__(self, what: str, total: int, stream: TextIO | None = None) -> None:
        self.what, self.total, self.done = what, total, 0
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = total >= MIN_TOTAL and os.environ.get("SEEDTRAIL_PROGRESS", "1") != "0"
        self.tty = self.enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self._lock = threading.Lock()
        self._start = time.perf_counter()
        self._last = 0.0
        self._quarter = 0

    def update(self, n: int = 1) -> None:
        if not self.enabled:
            return
        with self._lock:
            self.done += n
            now = time.perf_counter()
            if self.tty:
                if now - self._last >= 0.25 or self.done >= self.total:
                    self._last = now
                    self.stream.write(f"\r{self._line(now)}")
                    self.stream.flush()
            elif self.done * 4 // self.total > self._quarter:
                self._quarter = self.done * 4 // self.total
                self.stream.write(self._line(now) + "\n")
                self.stream.flush()

    def _line(self, now: float) -> str:
        elapsed = now - self._start
        rate = self.done / elapsed if elapsed > 0 else 0.0
        left = (self.total - self.done) / rate if rate > 0 else 0.0
        pct = 100 * self.done // max(1, self.total)
        return (
            f"{self.what}: {self.done}/{self.total} ({pct}%) "
            f"{rate:,.0f}/s, {elapsed:.0f}s elapsed, ~{left:.0f}s left"
        )

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
