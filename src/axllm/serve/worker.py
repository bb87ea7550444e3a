"""``ModelThread``: the one thread on which the server touches the model.

Every generation step, KV restore and KV snapshot of the server runs on this thread, one job after
another. That keeps runtimes that bind device contexts to a thread (AXCL) on one thread for the
server's lifetime, spares each request the cost of a fresh thread (on the CPU engine the first
step on a new thread is measurably slower), and serializes all use of the model even if an
asyncio caller gives up on a job early: a later job cannot start before the earlier one returned.

Contract:

* ``call(fn, *args)`` runs ``fn(*args)`` on the thread and returns its result (or raises its
  exception). A cancelled caller stops waiting; the job still runs to its end.
* ``stream(start, *args, **kwargs)`` runs ``start(*args, **kwargs)`` (which returns an iterator of
  chunks) on the thread and yields its items on the event loop, through
  ``axllm.stream_bridge.StreamBridge``: a slow consumer never holds the model, the thread's
  exception is raised in the consumer, and when the consumer stops early (``aclose``,
  cancellation) the thread stops before its next item, closes the iterator (which cancels a
  generation) and the consumer's ``aclose`` returns once that is done.
* ``close()`` lets queued jobs finish and ends the thread (it is a daemon thread otherwise, so an
  idle thread never holds up interpreter exit).
"""

from __future__ import annotations

import asyncio
import queue
import threading
from typing import Any, AsyncIterator, Callable, Iterator, Optional, TypeVar

from axllm.stream_bridge import END, StreamBridge

T = TypeVar("T")


class ModelThread:
    """See the module docstring for the contract."""

    def __init__(self, name: str = "axllm-serve-model"):
        self._jobs: queue.SimpleQueue[Optional[Callable[[], None]]] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._closed = False
        self._mutex = threading.Lock()

    def _run(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            job()

    def _submit(self, job: Callable[[], None]) -> None:
        with self._mutex:
            if self._closed:
                raise RuntimeError("the model thread is closed")
            if not self._started:
                self._thread.start()
                self._started = True
            self._jobs.put(job)

    def close(self) -> None:
        """Ends the thread after the jobs already queued."""
        with self._mutex:
            if self._closed:
                return
            self._closed = True
            started = self._started
            self._jobs.put(None)
        if started and threading.current_thread() is not self._thread:
            self._thread.join()

    async def call(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` run on the thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()

        def settle(ok: bool, value: Any) -> None:
            if future.done():
                return
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)

        def job() -> None:
            try:
                result = fn(*args)
            except BaseException as e:
                _post(loop, settle, False, e)
            else:
                _post(loop, settle, True, result)

        self._submit(job)
        return await future

    async def stream(self, start: Callable[..., Iterator[T]], *args: Any, **kwargs: Any) -> AsyncIterator[T]:
        """The items of ``start(*args, **kwargs)``, produced on the thread."""
        bridge: StreamBridge[T] = StreamBridge()
        self._submit(lambda: bridge.produce(start, *args, **kwargs))
        try:
            while (item := await bridge.next()) is not END:
                yield item
        finally:
            await bridge.close()


def _post(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> bool:
    """``fn(*args)`` scheduled on ``loop``; False when the loop is closed (nobody listens)."""
    try:
        loop.call_soon_threadsafe(fn, *args)
    except RuntimeError:
        return False
    return True
