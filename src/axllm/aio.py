"""asyncio adapters for ``axllm.LLM``: ``astream``, ``agenerate`` and ``achat``.

Each ``astream`` call runs the synchronous streaming generator (``llm.generate(..., stream=True)``
or ``llm.chat(..., stream=True)``) on one worker thread of its own: the thread creates the
generator and makes every ``next()`` call on it, so runtimes that bind device contexts to a
thread (AXCL) always see the same thread for a stream. ``next()`` runs a model step in C++ with
the GIL released, so the event loop keeps running meanwhile.

Contract:

* Chunks travel through ``axllm.stream_bridge.StreamBridge`` (posted with
  ``loop.call_soon_threadsafe``, awaited without polling, never waiting for a slow consumer; the
  worker's exception is raised in the consumer).
* When the consumer stops early (``break``, ``aclose()``, task cancellation), the worker stops
  before its next step (a step under way finishes first) and closes the generator, which cancels
  the generation. Closing the async iterator waits for that and joins the worker, so once it has
  closed, the generation is over and the thread is gone. A ``break`` out of ``async for`` closes the
  iterator when asyncio finalizes it, soon
  after; ``contextlib.aclosing`` closes it at once.
* Workers are not daemon threads: an interpreter exiting with a stream still open waits for that
  stream's generation to end.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator, Mapping, Sequence
from typing import Any

from typing_extensions import Protocol

from axllm.generation import Chunk, Completion
from axllm.stream_bridge import END, StreamBridge


class Streaming(Protocol):
    """What these adapters need of a model: ``axllm.LLM``'s ``generate`` and ``chat``."""

    def generate(self, *args: Any, **kwargs: Any) -> Any: ...

    def chat(self, *args: Any, **kwargs: Any) -> Any: ...


__all__ = ["achat", "agenerate", "astream"]

_METHODS = ("generate", "chat")


async def astream(llm: Streaming, method: str, *args: Any, **kwargs: Any) -> AsyncGenerator[Chunk, None]:
    """Stream ``getattr(llm, method)(*args, stream=True, **kwargs)`` (``method`` is ``"generate"``
    or ``"chat"``) to the event loop, one worker thread per call; see the module docstring."""
    if method not in _METHODS:
        raise ValueError(f"method must be one of {_METHODS}, got {method!r}")
    if "stream" in kwargs:
        raise TypeError("astream always streams; do not pass stream=")
    bridge: StreamBridge[Chunk] = StreamBridge()
    worker = threading.Thread(
        target=bridge.produce,
        args=(getattr(llm, method), *args),
        kwargs={"stream": True, **kwargs},
        name=f"axllm-astream-{method}",
    )
    worker.start()
    try:
        while (chunk := await bridge.next()) is not END:
            yield chunk
    finally:
        await bridge.close()
        worker.join()


async def agenerate(llm: Streaming, *args: Any, **kwargs: Any) -> Completion:
    """``llm.generate(*args, **kwargs)`` awaited; the work runs on a worker thread."""
    return await _collect(astream(llm, "generate", *args, **kwargs))


async def achat(
    llm: Streaming, messages: Sequence[Mapping[str, Any]], *args: Any, **kwargs: Any
) -> Completion:
    """``llm.chat(messages, *args, **kwargs)`` awaited; the work runs on a worker thread."""
    return await _collect(astream(llm, "chat", messages, *args, **kwargs))


async def _collect(chunks: AsyncGenerator[Chunk, None]) -> Completion:
    """A ``Completion`` from a whole stream, assembled as ``LLM.generate`` does for ``stream=False``."""
    got: list[Chunk] = []
    try:
        async for chunk in chunks:
            got.append(chunk)
    finally:
        await chunks.aclose()
    return Completion.from_chunks(got)
