"""The progress bar: images done, running top-k accuracy, images/s and time left.

On a terminal it redraws one line (at most 10 times a second); into a log it prints a line every
10% so the log stays readable.
"""
from __future__ import annotations

import sys
import time
from typing import TextIO

from archc.runtime.eval.metrics import hits

BAR_WIDTH = 24


def format_duration(seconds: float) -> str:
    seconds = int(seconds)
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


class Progress:
    def __init__(self, total: int, topk: tuple[int, ...], label: str = "",
                 stream: TextIO | None = None, clock=time.monotonic):
        self.total, self.topk, self.label = total, topk[:2], label
        self.stream = stream if stream is not None else sys.stderr
        self.interactive = self.stream.isatty()
        self.clock = clock
        self.done = self.evaluated = self.skipped = 0
        self.correct = {k: 0 for k in self.topk}
        self.started = clock()
        self.resumed_from = 0
        self.last_drawn = float("-inf")
        self.last_decile = -1

    def add(self, records: list[dict], resumed: bool = False) -> None:
        """Count finished images; `resumed` ones come from an earlier run and do not count
        towards this run's speed."""
        for record in records:
            self.done += 1
            if "skipped" in record:
                self.skipped += 1
                continue
            self.evaluated += 1
            for k in self.topk:
                self.correct[k] += hits(record, k)
        if resumed:
            self.resumed_from = self.done
            self.started = self.clock()
        if records:
            self._draw()

    def line(self) -> str:
        now = self.clock()
        filled = BAR_WIDTH * self.done // max(1, self.total)
        bar = "#" * filled + "." * (BAR_WIDTH - filled)
        parts = [f"{self.label}[{bar}] {self.done}/{self.total}"]
        for k in self.topk:
            if self.evaluated:
                parts.append(f"top{k} {100 * self.correct[k] / self.evaluated:.2f}%")
        new = self.done - self.resumed_from
        elapsed = now - self.started
        if new and elapsed > 0:
            rate = new / elapsed
            parts.append(f"{rate:.1f} img/s")
            parts.append(f"eta {format_duration((self.total - self.done) / rate)}")
        if self.skipped:
            parts.append(f"skipped {self.skipped}")
        return "  ".join(parts)

    def _draw(self, final: bool = False) -> None:
        if self.interactive:
            now = self.clock()
            if final or now - self.last_drawn >= 0.1:
                self.stream.write("\r" + self.line() + ("\n" if final else ""))
                self.stream.flush()
                self.last_drawn = now
            return
        decile = 10 * self.done // max(1, self.total)
        if decile > self.last_decile:
            self.stream.write(self.line() + "\n")
            self.stream.flush()
            self.last_decile = decile

    def finish(self) -> None:
        self._draw(final=True)
