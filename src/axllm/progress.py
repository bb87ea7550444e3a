"""Progress shown on a terminal: the load bar of ``LLM(progress=True)`` and the REPL, and the
REPL's prefill line."""

from __future__ import annotations

import time
from typing import TextIO

__all__ = ["LoadProgressBar", "PrefillProgressLine"]


class PrefillProgressLine:
    """A ``prefill_progress=`` callback for one reply: once the prompt has been prefilling for
    ``delay_s`` (a long prompt on a slow NPU), ``[prefill done/total tokens]`` is redrawn in place
    on ``stream``, and erased when the prefill ends, before the reply is written."""

    def __init__(self, stream: TextIO, delay_s: float = 0.5):
        self.stream = stream
        self.delay_s = delay_s
        self.start = time.monotonic()
        self.shown = False

    def __call__(self, done: int, total: int) -> None:
        if done >= total:
            self.clear()
            return
        if self.shown or time.monotonic() - self.start >= self.delay_s:
            self.stream.write(f"\r[prefill {done}/{total} tokens]")
            self.stream.flush()
            self.shown = True

    def clear(self) -> None:
        """Erases the progress line, if shown (also when a prefill ends early: Ctrl-C, an error)."""
        if self.shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.shown = False


class LoadProgressBar:
    """A ``progress=`` callback for ``LLM``: a bar redrawn in place on ``stream``."""

    def __init__(self, stream: TextIO, width: int = 30):
        self.stream = stream
        self.width = width

    def __call__(self, done: int, total: int) -> None:
        filled = self.width * done // max(total, 1)
        self.stream.write(f"\rloading [{'#' * filled}{'.' * (self.width - filled)}] {done}/{total}")
        if done >= total:
            self.stream.write("\n")
        self.stream.flush()
