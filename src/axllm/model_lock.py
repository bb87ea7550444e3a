"""Who may use one model, and when: the one place that decides the order of callers sharing an
``axllm.LLM`` (the C++ runtime refuses concurrent calls instead of ordering them).

``ModelLock`` has two parts:

* turns: a generation holds the model from its first step to its end, so the steps of two
  generations never interleave. Turns are given strictly in arrival order (``FairLock``). A
  generation started on a thread whose earlier stream is still open supersedes that stream (it is
  cancelled and its turn passes to the new one), since waiting for it would never end.
* calls: every single call into the runtime (one generation step, a cache read, a reset) holds
  ``ModelLock.call`` for its duration, so a call from another thread between the steps of a
  generation waits for the step under way instead of failing.

``FairLock``'s contract:

* Waiters are served strictly in the order their ``acquire`` calls queued. A release hands the
  lock directly to the oldest waiter, so a thread that arrives later can never overtake one that
  is already waiting (no barging), and an uncontended ``acquire`` never overtakes a queued one.
* Any thread may release: a streaming generation holds the lock across many ``next()`` calls and
  its generator may be finalized on another thread than the one that started it. The lock
  therefore has no owner thread and is not reentrant.
* Releasing a lock that is not held raises ``RuntimeError``. The lock cannot tell a stray second
  release from the new holder's release once the lock has been handed on to a waiter, so each
  acquisition must be released exactly once (a ``with`` block or a ``try``/``finally``).
* A waiter that times out, or is interrupted by an exception while waiting, leaves the queue; if
  the lock reached it in that instant, it passes the lock on instead of keeping it.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Optional

__all__ = ["FairLock", "ModelLock", "Turn"]


class FairLock:
    """A FIFO lock usable from any thread; see the module docstring for the contract."""

    def __init__(self) -> None:
        self._mutex = threading.Lock()
        self._waiters: deque[threading.Event] = deque()
        self._held = False

    @property
    def locked(self) -> bool:
        """Whether some caller holds the lock."""
        with self._mutex:
            return self._held

    @property
    def queue_length(self) -> int:
        """How many callers are waiting in ``acquire`` (the holder is not counted)."""
        with self._mutex:
            return len(self._waiters)

    def acquire(self, timeout: float | None = None) -> bool:
        """Wait for the lock behind every earlier waiter; ``True`` once held.

        ``timeout`` is in seconds: ``None`` waits for as long as it takes, ``0`` only takes a free
        lock with nobody queued, and otherwise ``False`` is returned when it runs out.
        """
        if timeout is not None and timeout < 0:
            raise ValueError(f"timeout must be None or >= 0, got {timeout}")
        with self._mutex:
            if not self._held and not self._waiters:
                self._held = True
                return True
            if timeout == 0:
                return False
            turn = threading.Event()
            self._waiters.append(turn)
        try:
            if turn.wait(timeout):
                return True
        except BaseException:
            if self._abandon(turn):
                self.release()
            raise
        return self._abandon(turn)

    def release(self) -> None:
        """Hand the lock to the oldest waiter, or free it; ``RuntimeError`` if it is not held."""
        with self._mutex:
            if not self._held:
                raise RuntimeError("FairLock.release() called on a lock that is not held")
            # Ownership moves to the oldest waiter without the lock ever becoming free, which is
            # what keeps later arrivals from overtaking it.
            if self._waiters:
                self._waiters.popleft().set()
            else:
                self._held = False

    def _abandon(self, turn: threading.Event) -> bool:
        """Withdraw a waiter whose wait ended without seeing its turn; ``True`` if the lock reached
        it in the meantime (it then holds the lock)."""
        with self._mutex:
            if turn.is_set():
                return True
            self._waiters.remove(turn)
            return False

    def __enter__(self) -> FairLock:
        self.acquire()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        with self._mutex:
            return f"<FairLock {'locked' if self._held else 'unlocked'}, {len(self._waiters)} waiting>"


@dataclass
class Turn:
    """One generation's hold on the model. ``generation`` is set once it has started;
    ``superseded`` once a newer generation on the same thread took the model over."""

    thread: int
    generation: Any = None
    superseded: bool = False


class ModelLock:
    """Turns and calls on one model; see the module docstring."""

    def __init__(self) -> None:
        self.call = threading.Lock()
        self._turns = FairLock()
        self._mutex = threading.Lock()
        self._turn: Optional[Turn] = None

    @contextmanager
    def turn(self) -> Iterator[Turn]:
        """Holds the model for one generation (waiting in arrival order); see the module docstring."""
        me = threading.get_ident()
        with self._mutex:
            current = self._turn
            inherited = current is not None and current.thread == me and not current.superseded
            if inherited:
                assert current is not None
                current.superseded = True
                if current.generation is not None:
                    current.generation.cancel()
                self._turn = Turn(me)
                mine = self._turn
        if not inherited:
            self._turns.acquire()
            with self._mutex:
                self._turn = mine = Turn(me)
        try:
            yield mine
        finally:
            with self._mutex:
                passed_on = mine.superseded
                if not passed_on:
                    self._turn = None
            if not passed_on:
                self._turns.release()
