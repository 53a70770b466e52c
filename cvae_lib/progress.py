"""Progress of long work, shown one way everywhere (done, elapsed, about how long is left):
redrawn in place (``"bar"``), one line at a time (``"lines"``) or not at all (``"none"``)."""

import sys
import time

from .errors import CvaeError

MODES = ("bar", "lines", "none")  #: A live bar, one line per report, or nothing.
#: Default seconds between reports: often enough to look alive, rarely enough for a log.
MIN_INTERVAL = {"bar": 1.0, "lines": 15.0, "none": 0.0}
BAR_WIDTH = 30


def check_mode(mode: str) -> str:
    """``mode`` if it is one of :data:`MODES`, else a one-line error (not a silent no-op)."""
    if mode not in MODES:
        raise CvaeError(f"progress must be 'bar', 'lines' or 'none', got {mode!r}")
    return mode


class Progress:
    """``label: done/total unit, detail, elapsed, about N s left``, at most every ``min_interval`` s."""

    def __init__(
        self,
        total: int,
        label: str,
        unit: str,
        mode: str = "bar",
        stream=None,
        min_interval: float | None = None,
    ):
        self.total, self.label, self.unit, self.mode = (
            total,
            label,
            unit,
            check_mode(mode),
        )
        self.stream = stream or sys.stderr
        self.min_interval = MIN_INTERVAL[mode] if min_interval is None else min_interval
        self.start = self.last = time.perf_counter()

    def text(self, done: int, detail: str = "", now: float | None = None) -> str:
        elapsed = (time.perf_counter() if now is None else now) - self.start
        left = (
            f"about {elapsed / done * (self.total - done):.0f} s left"
            if done
            else "time left unknown"
        )
        return ", ".join(
            part
            for part in (
                f"{self.label}: {done}/{self.total} {self.unit}",
                detail,
                f"{elapsed:.0f} s",
                left,
            )
            if part
        )

    def update(self, done: int, detail: str = "") -> None:
        """Report ``done`` of ``total``; skipped if the last report was too recent, unless finished."""
        now = time.perf_counter()
        if self.mode == "none" or (
            done < self.total and now - self.last < self.min_interval
        ):
            return
        self.last = now
        text = self.text(done, detail, now)
        if self.mode == "lines":
            print(text, file=self.stream, flush=True)
            return
        filled = int(BAR_WIDTH * done / self.total) if self.total else BAR_WIDTH
        print(
            f"\r[{'#' * filled}{'.' * (BAR_WIDTH - filled)}] {text}   ",
            end="" if done < self.total else "\n",
            file=self.stream,
            flush=True,
        )
