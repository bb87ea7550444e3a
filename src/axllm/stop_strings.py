"""Stop strings over streamed text: emit what is safe, hold back what could still become a stop.

:class:`StopMatcher` sees the generated text in chunks of any size and finds the earliest stop
string in the whole stream, wherever the chunk boundaries fall: the text it releases is always
exactly the stream up to (not including) that occurrence, or the whole stream when no stop occurs.

Which stop wins: the occurrence that starts first; among stops starting at the same position,
the shortest (it is a prefix of the longer ones there, so it is complete no later than they are,
and the answer never depends on how the text was chunked). A complete stop is reported as soon as
no other stop could still start before it; while one could (a stop starting earlier has only
partly arrived), the decision waits for more text or for :meth:`StopMatcher.flush`.
"""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["StopMatcher"]


class StopMatcher:
    """One stream's stop-string matcher. Not thread-safe; one instance per stream."""

    def __init__(self, stops: Sequence[str]) -> None:
        """``stops``: the stop strings (duplicates allowed, order irrelevant; an empty sequence
        matches nothing). Raises ValueError for an empty string, TypeError for a non-string item
        or for a bare ``str`` (pass ``[text]``)."""
        if isinstance(stops, str):
            raise TypeError("stops must be a sequence of strings, not a single string")
        stops = list(stops)
        for i, stop in enumerate(stops):
            if not isinstance(stop, str):
                raise TypeError(f"stops[{i}] must be a str, not {type(stop).__name__}")
            if not stop:
                raise ValueError(f"stops[{i}] is empty; a stop string needs at least one character")
        self._stops = tuple(dict.fromkeys(stops))
        self._prefixes = frozenset(s[:k] for s in self._stops for k in range(1, len(s)))
        self._max_len = max((len(s) for s in self._stops), default=0)
        # Held-back text: always a proper prefix of some stop, so shorter than the longest stop.
        self._pending = ""
        self._matched: str | None = None
        self._finished = False

    @property
    def matched(self) -> str | None:
        """The stop string found (by :meth:`push` or :meth:`flush`), else ``None``."""
        return self._matched

    def _earliest(self, text: str) -> tuple[int, str] | None:
        """(start, stop) of the earliest-starting, then shortest, stop occurrence in ``text``."""
        best: tuple[int, str] | None = None
        for stop in self._stops:
            start = text.find(stop)
            if start >= 0 and (best is None or (start, len(stop)) < (best[0], len(best[1]))):
                best = (start, stop)
        return best

    def _hold_start(self, text: str) -> int:
        """Start of the longest suffix of ``text`` that is a proper prefix of a stop
        (``len(text)`` if none): from there on, a stop may still be arriving."""
        for start in range(max(0, len(text) - self._max_len + 1), len(text)):
            if text[start:] in self._prefixes:
                return start
        return len(text)

    def push(self, text: str) -> tuple[str, str | None]:
        """Feed the next chunk; returns ``(text safe to emit now, stop matched or None)``.

        Once a stop is returned the stream is over: the text after it is dropped and further
        pushes raise RuntimeError (as they do after :meth:`flush`).
        """
        if self._finished:
            raise RuntimeError(
                "StopMatcher.push after the stream ended "
                f"({'stop ' + repr(self._matched) + ' matched' if self._matched else 'flushed'})"
            )
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        buffer = self._pending + text
        match = self._earliest(buffer)
        hold = self._hold_start(buffer)
        if match is not None and match[0] <= hold:
            start, stop = match
            self._pending = ""
            self._matched = stop
            self._finished = True
            return buffer[:start], stop
        self._pending = buffer[hold:]
        return buffer[:hold], None

    def flush(self) -> str:
        """End of stream: the text held back, up to a stop that was still awaiting a decision
        (then :attr:`matched` is set). Returns ``""`` once the stream has ended."""
        if self._finished:
            return ""
        self._finished = True
        buffer, self._pending = self._pending, ""
        match = self._earliest(buffer)
        if match is not None:
            self._matched = match[1]
            return buffer[: match[0]]
        return buffer
