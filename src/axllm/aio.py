"""asyncio adapters for ``axllm.LLM``: ``astream``, ``agenerate`` and ``achat``.

Each ``astream`` call runs the synchronous streaming generator (``llm.generate(..., stream=True)``
or ``llm.chat(..., stream=True)``) on one worker thread of its own: the thread creates the
generator and makes every ``next()`` call on it, so runtimes that bind device contexts to a
thread (AXCL) always see the same thread for a stream. ``next()`` runs a model step in C++ with
the GIL released, so the event loop keeps running meanwhile.

Contract:

* The worker posts each chunk to the event loop with ``loop.call_soon_threadsafe`` into an
  ``asyncio.Queue``; the consumer awaits the queue (no polling). The queue is unbounded: the
  worker does not wait for a slow consumer, so the model is freed as early as possible.
* The worker posts exactly one final message after its last chunk: the end of the stream, or the
  exception raised while starting or advancing the generator, which the consumer then raises.
* When the consumer stops early (``break``, ``aclose()``, task cancellation), the worker is told to
  stop; it stops before its next step (a step under way finishes first), closes the generator,
  which cancels the generation, and exits. Closing the async iterator waits for that final
  message and joins the worker, so once it has closed, the generation is over and the thread is
  gone. A ``break`` out of ``async for`` closes the iterator when asyncio finalizes it, soon
  after; ``contextlib.aclosing`` closes it at once.
* Workers are not daemon threads: an interpreter exiting with a stream still open waits for that
  stream's generation to end.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncGenerator, Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from axllm.generation import Chunk, Completion

if TYPE_CHECKING:
    from axllm.llm import LLM

__all__ = ["achat", "agenerate", "astream"]

_METHODS = ("generate", "chat")
# Messages from a worker: (_CHUNK, Chunk) any number of times, then (_END, None) or
# (_ERROR, exception) exactly once.
_CHUNK, _END, _ERROR = "chunk", "end", "error"


async def astream(llm: LLM, method: str, *args: Any, **kwargs: Any) -> AsyncGenerator[Chunk, None]:
    """Stream ``getattr(llm, method)(*args, stream=True, **kwargs)`` (``method`` is ``"generate"``
    or ``"chat"``) to the event loop, one worker thread per call; see the module docstring."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if "stream" in kwargs:
        raise TypeError("astream always streams; do not pass stream=")
    start = getattr(llm, method)
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
    stop = threading.Event()
    worker = threading.Thread(target=_pump, args=(loop, queue, stop, start, args, kwargs),
                              name=f"axllm-astream-{method}")
    worker.start()
    ended = False
    try:
        while True:
            kind, value = await queue.get()
            if kind == _CHUNK:
                yield value
                continue
            ended = True
            if kind == _ERROR:
                raise value
            return
    finally:
        stop.set()
        while not ended:
            kind, _ = await queue.get()
            ended = kind != _CHUNK
        worker.join()


async def agenerate(llm: LLM, *args: Any, **kwargs: Any) -> Completion:
    """``llm.generate(*args, **kwargs)`` awaited; the work runs on a worker thread."""
    return await _collect(astream(llm, "generate", *args, **kwargs))


async def achat(llm: LLM, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> Completion:
    """``llm.chat(messages, **kwargs)`` awaited; the work runs on a worker thread."""
    return await _collect(astream(llm, "chat", messages, **kwargs))


async def _collect(chunks: AsyncGenerator[Chunk, None]) -> Completion:
    """A ``Completion`` from a whole stream, assembled as ``axllm.llm`` does for ``stream=False``."""
    texts: list[str] = []
    ids: list[int] = []
    last: Chunk | None = None
    try:
        async for chunk in chunks:
            texts.append(chunk.text)
            ids.extend(chunk.token_ids)
            last = chunk
    finally:
        await chunks.aclose()
    if last is None or last.finish_reason is None or last.metrics is None:
        raise RuntimeError("the stream ended without a final chunk carrying a finish reason")
    return Completion("".join(texts), ids, last.finish_reason, last.metrics, last.stop)


def _pump(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue, stop: threading.Event,
          start: Callable[..., Iterator[Chunk]], args: tuple, kwargs: dict) -> None:
    """The worker: start the stream, advance it until it ends or ``stop`` is set, close it, and
    post the final message. Never raises: everything goes to the consumer."""

    def post(kind: str, value: Any) -> bool:
        try:
            loop.call_soon_threadsafe(queue.put_nowait, (kind, value))
        except RuntimeError:  # the event loop is closed: nobody is listening any more
            stop.set()
            return False
        return True

    try:
        chunks = start(*args, stream=True, **kwargs)
        try:
            while not stop.is_set():
                try:
                    chunk = next(chunks)
                except StopIteration:
                    break
                if not post(_CHUNK, chunk):
                    break
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()
    except BaseException as e:
        post(_ERROR, e)
    else:
        post(_END, None)
