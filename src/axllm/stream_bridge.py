"""``StreamBridge``: the items of a synchronous iterator, produced on a thread, consumed on an
asyncio event loop. ``axllm.aio`` (a thread per stream) and the server's model thread
(``axllm.serve.worker``) both carry generation chunks through it.

Contract:

* ``produce(start, *args, **kwargs)`` runs on the producing thread: it calls
  ``start(*args, **kwargs)`` there (so the iterator is created and advanced on one thread, which
  runtimes binding device contexts to a thread need) and posts each item with
  ``loop.call_soon_threadsafe`` into an unbounded ``asyncio.Queue`` (a slow consumer never holds
  the model), then exactly one final message: the end, or the exception raised while starting or
  advancing the iterator. It never raises.
* ``items()`` yields the items on the event loop and raises the producer's exception, if any.
* When the consumer stops early (``break`` then ``aclose()``, task cancellation), the producer is
  told to stop: it stops before its next item (an item under way is finished first), closes the
  iterator (which cancels a generation) and posts its final message; closing ``items()`` returns
  once that message has arrived, so the generation is over by then.
* If the event loop is closed, nobody listens any more: the producer stops the same way.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator
from typing import Any, Generic, TypeVar

T = TypeVar("T")
_ITEM, _END, _ERROR = "item", "end", "error"


class StreamBridge(Generic[T]):
    """See the module docstring. Create it on the event loop's thread; one stream per bridge."""

    def __init__(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._stop = threading.Event()

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

    async def items(self) -> AsyncGenerator[T, None]:
        """The producer's items, on the event loop."""
        ended = False
        try:
            while True:
                kind, value = await self._inbox.get()
                if kind == _ITEM:
                    yield value
                    continue
                ended = True
                if kind == _ERROR:
                    raise value
                return
        finally:
            self._stop.set()
            while not ended:
                kind, _ = await self._inbox.get()
                ended = kind != _ITEM
