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

from array import array
from collections.abc import Sequence

__all__ = ["StopMatcher"]


class _StopAutomaton:
    """Knuth-Morris-Pratt over one stop string: after each character, ``state`` is the length of
    the longest suffix of the stream that is a proper prefix of the stop (or the whole stop, just
    matched). Memory linear in the stop's length, amortized constant time per character."""

    def __init__(self, stop: str) -> None:
        self.stop = stop
        self.fail = array("i", bytes(4 * len(stop)))  # fail[i]: longest proper border of stop[: i + 1]
        k = 0
        for i in range(1, len(stop)):
            while k and stop[i] != stop[k]:
                k = self.fail[k - 1]
            if stop[i] == stop[k]:
                k += 1
            self.fail[i] = k
        self.state = 0

    def feed(self, ch: str) -> bool:
        """Advances over ``ch``; True when the stop ends at it."""
        stop, state = self.stop, self.state
        if state == len(stop):
            state = self.fail[state - 1]
        while state and stop[state] != ch:
            state = self.fail[state - 1]
        if stop[state] == ch:
            state += 1
        self.state = state
        return state == len(stop)

    @property
    def partial(self) -> int:
        """Characters of a stop occurrence that may still be arriving (0 after a full match)."""
        return 0 if self.state == len(self.stop) else self.state


class StopMatcher:
    """One stream's stop-string matcher. Not thread-safe; one instance per stream. Memory is
    linear in the stop strings' total length (one automaton each) plus the text held back, which is
    shorter than the longest stop."""

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
        self._automata = [_StopAutomaton(stop) for stop in dict.fromkeys(stops)]
        self._pos = 0  # characters seen
        self._released = 0  # characters released (the held-back text starts there)
        self._pending = ""
        self._best: tuple[int, str] | None = None  # (start, stop) of the best complete occurrence
        self._matched: str | None = None
        self._finished = False

    @property
    def matched(self) -> str | None:
        """The stop string found (by :meth:`push` or :meth:`flush`), else ``None``."""
        return self._matched

    def _earliest_open(self) -> int:
        """Where the earliest occurrence that may still be arriving starts (``_pos`` if none)."""
        return min((self._pos - a.partial for a in self._automata if a.partial), default=self._pos)

    def _end(self, upto: int, stop: str | None) -> str:
        """Ends the stream: the held-back text up to absolute position ``upto``."""
        text = self._pending[: upto - self._released]
        self._pending = ""
        self._matched = stop
        self._finished = True
        return text

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
        self._pending += text
        for ch in text:
            self._pos += 1
            for automaton in self._automata:
                if automaton.feed(ch):
                    start = self._pos - len(automaton.stop)
                    if self._best is None or (start, len(automaton.stop)) < (
                        self._best[0],
                        len(self._best[1]),
                    ):
                        self._best = (start, automaton.stop)
            if self._best is not None and self._earliest_open() >= self._best[0]:
                return self._end(self._best[0], self._best[1]), self._best[1]
        hold = self._earliest_open() if self._best is None else min(self._earliest_open(), self._best[0])
        out = self._pending[: hold - self._released]
        self._pending = self._pending[hold - self._released :]
        self._released = hold
        return out, None

    def flush(self) -> str:
        """End of stream: the text held back, up to a stop that was still awaiting a decision
        (then :attr:`matched` is set). Returns ``""`` once the stream has ended."""
        if self._finished:
            return ""
        if self._best is not None:
            return self._end(self._best[0], self._best[1])
        return self._end(self._pos, None)
