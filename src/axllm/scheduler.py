"""``FairLock``: a first-come, first-served lock for sharing one model between callers.

Contract:

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
from types import TracebackType

__all__ = ["FairLock"]


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

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.release()

    def __repr__(self) -> str:
        with self._mutex:
            return f"<FairLock {'locked' if self._held else 'unlocked'}, {len(self._waiters)} waiting>"
