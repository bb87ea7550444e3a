"""``StreamBridge``: the items of a synchronous iterator, produced on a thread, consumed on an
asyncio event loop. ``axllm.aio`` (a thread per stream) and the server's model thread
(``axllm.serve.model_queue``) both carry generation chunks through it.

Contract:

* ``produce(start, *args, **kwargs)`` runs on the producing thread: it calls
  ``start(*args, **kwargs)`` there (so the iterator is created and advanced on one thread, which
  runtimes binding device contexts to a thread need) and posts each item with
  ``loop.call_soon_threadsafe`` into an unbounded ``asyncio.Queue`` (a slow consumer never holds
  the model), then exactly one final message: the end, or the exception raised while starting or
  advancing the iterator. It never raises.
* ``await next()`` returns the next item on the event loop, or ``END`` once the producer has
  finished, and raises the producer's exception, if any.
* ``await close()`` (always, in the consumer's ``finally``; also after the end) tells the producer
  to stop: it stops before its next item (an item under way is finished first), closes the
  iterator (which cancels a generation) and posts its final message; ``close()`` returns once that
  message has arrived, so the generation is over by then. These are plain coroutines, not an
  async generator, so the consumer's own async generator is the only one to finalize when the
  event loop shuts down with a stream open.
* If the event loop is closed, nobody listens any more: the producer stops the same way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_ITEM, _END, _ERROR = "item", "end", "error"
END = object()  # what StreamBridge.next returns once the producer has finished


class StreamBridge(Generic[T]):
    """See the module docstring. Create it on the event loop's thread; one stream per bridge."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._stop = threading.Event()
        self._ended = False

    def _send(self, kind: str, value: Any) -> bool:
        try:
            self._loop.call_soon_threadsafe(self._inbox.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is closed
            self._stop.set()
            return False
        return True

    def produce(self, start: Callable[..., Iterator[T]], /, *args: Any, **kwargs: Any) -> None:
        """Runs on the producing thread; never raises (everything goes to the consumer)."""
        try:
            items = start(*args, **kwargs)
            try:
                while not self._stop.is_set():
                    try:
                        item = next(items)
                    except StopIteration:
                        break
                    if not self._send(_ITEM, item):
                        break
            finally:
                close = getattr(items, "close", None)
                if close is not None:
                    close()
        except BaseException as e:
            self._send(_ERROR, e)
        else:
            self._send(_END, None)

    async def next(self) -> Any:
        """The producer's next item, or ``StreamBridge.END`` once it has finished; raises the
        producer's exception. Not to be called again after END or an exception."""
        kind, value = await self._inbox.get()
        if kind == _ITEM:
            return value
        self._ended = True
        if kind == _ERROR:
            raise value
        return END

    async def close(self) -> None:
        """Tells the producer to stop and waits for its final message (unless it has come)."""
        self._stop.set()
        while not self._ended:
            kind, _ = await self._inbox.get()
            self._ended = kind != _ITEM
