"""Progress of a bench stage: plain lines on stderr, which the parent leaves attached to the terminal.

A stage's stdout carries exactly one JSON line (its result), so everything a person
should see while it runs goes to stderr: what it is doing, days x/N of a range, and a
heartbeat when a step says nothing for a while (rendering, a long query).
"""

from __future__ import annotations

import sys
import threading
import time


class Progress:
    """`say(text)` prints `  [stage] text` at once; `step(i, n, text)` at most every `every` seconds
    (and always for the first and last step); a heartbeat prints while nothing else is said."""

    def __init__(self, stage: str, *, every: float = 5.0, heartbeat: float = 30.0, stream=None):
        self.stage, self.every, self.heartbeat = stage, every, heartbeat
        self.stream = stream or sys.stderr
        self.started = self._last = time.monotonic()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def say(self, text: str) -> None:
        with self._lock:
            elapsed = time.monotonic() - self.started
            print(f"  [{self.stage} {elapsed:6.1f} s] {text}", file=self.stream, flush=True)
            self._last = time.monotonic()

    def step(self, i: int, n: int, text: str = "") -> None:
        if i in (1, n) or time.monotonic() - self._last >= self.every:
            self.say(f"{i}/{n}" + (f" {text}" if text else ""))

    def __enter__(self) -> "Progress":
        if self.heartbeat > 0:
            self._thread = threading.Thread(target=self._beat, daemon=True, name="bench-heartbeat")
            self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()

    def _beat(self) -> None:
        while not self._stop.wait(1.0):
            if time.monotonic() - self._last >= self.heartbeat:
                self.say("still running")
