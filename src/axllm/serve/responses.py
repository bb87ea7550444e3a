"""ASGI responses for generation requests: the reply (one JSON object, or a server-sent-event
stream) produced while the client connection and the request's deadline are watched.

Contract of ``GenerationResponse``:

* The reply is produced by one task; a second task waits for the client's ``http.disconnect``.
* When the client disconnects before the reply is complete, the producing task is cancelled at
  once; its generation iterator is closed, which cancels the generation and frees the model
  (see ``axllm.serve.model_queue``). Nothing more is sent.
* When ``deadline`` passes before the reply is complete, the same happens, and the client gets a
  ``RequestTimedOut`` error: a 503 JSON response if nothing was sent yet, else a final error event
  on the stream.
* Once the reply is complete, the producing task is let finish.
* Status codes are decided when the first chunk arrives: errors raised before it (queue full,
  engine failure) are sent as JSON with their status; errors after it, as a stream's error event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Awaitable
from typing import Any, Callable, Optional

from axllm.errors import AxllmError, ContextOverflowError
from axllm.generation import Chunk, GenerationConfig
from axllm.serve.errors import APIError, BadRequest, EngineFailure, RequestTimedOut
from axllm.serve.model_queue import ModelQueue, RunInfo
from axllm.serve.protocol import DONE, Reply, dumps, extension, sse

logger = logging.getLogger("axllm.serve")
Send = Callable[[dict], Awaitable[None]]
Receive = Callable[[], Awaitable[dict]]
Produce = Callable[[Send], Awaitable[None]]
SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


def as_api_error(e: BaseException) -> APIError:
    """The client-facing error for an exception raised by a generation."""
    if isinstance(e, APIError):
        return e
    if isinstance(e, ContextOverflowError):
        return BadRequest(str(e), code="context_length_exceeded")
    if isinstance(e, (ValueError, TypeError)):
        return BadRequest(str(e))
    if isinstance(e, AxllmError):
        return EngineFailure(f"the engine failed: {' '.join(str(e).split())}")
    return EngineFailure(f"the engine failed: {type(e).__name__}: {' '.join(str(e).split())}")


async def send_json(send: Send, status: int, obj: Any, headers: Optional[dict[str, str]] = None) -> None:
    """A complete JSON response."""
    body = dumps(obj)
    raw = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    raw += [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in (headers or {}).items()]
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_error(send: Send, error: APIError) -> None:
    await send_json(send, error.status, error.body(), error.headers)


class _Output:
    """``send`` that remembers whether the response has started and whether it is complete."""

    def __init__(self, send: Send):
        self._send = send
        self.started = False
        self.complete = False

    async def send(self, message: dict) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        elif message["type"] == "http.response.body" and not message.get("more_body", False):
            self.complete = True
        await self._send(message)


async def _disconnected(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _cancel(task: asyncio.Task) -> None:
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    except Exception:
        logger.exception("axllm.serve: error while cancelling a generation")


class GenerationResponse:
    """Runs ``produce(send)`` under the watch described in the module docstring. ``retry_after``
    gives the ``Retry-After`` seconds of a timeout error."""

    def __init__(
        self,
        produce: Produce,
        *,
        deadline: Optional[float],
        timeout: Optional[float],
        retry_after: Callable[[], int],
    ):
        self.produce = produce
        self.deadline = deadline
        self.timeout = timeout
        self.retry_after = retry_after

    async def __call__(self, scope: dict, receive: Receive, send: Send) -> None:
        out = _Output(send)
        producer = asyncio.ensure_future(self.produce(out.send))
        watcher = asyncio.ensure_future(_disconnected(receive))
        try:
            outcome = await self._watch(producer, watcher, out)
        except asyncio.CancelledError:
            await _cancel(producer)
            raise
        finally:
            if not watcher.done():
                watcher.cancel()
        if outcome == "disconnected":
            logger.info("axllm.serve: the client disconnected; its generation was cancelled")
        elif outcome == "timeout":
            error = RequestTimedOut(
                f"the request took longer than --request-timeout {self.timeout:g} s and was cancelled",
                self.retry_after(),
            )
            logger.warning("axllm.serve: %s", error.message)
            if not out.started:
                await send_error(out.send, error)
            else:
                await out.send({"type": "http.response.body", "body": sse(error.body()), "more_body": False})

    async def _watch(self, producer: asyncio.Task, watcher: asyncio.Task, out: _Output) -> str:
        pending = {producer, watcher}
        while True:
            timeout = None if self.deadline is None else max(0.0, self.deadline - time.monotonic())
            done, _ = await asyncio.wait(
                pending, timeout=None if out.complete else timeout, return_when=asyncio.FIRST_COMPLETED
            )
            if producer in done:
                producer.result()
                return "done"
            if out.complete:
                pending = {producer}
                continue
            await _cancel(producer)
            return "disconnected" if watcher in done else "timeout"


async def _first(chunks: AsyncIterator[Chunk], send: Send) -> Optional[Chunk]:
    """The first chunk, or None after sending the error that came instead."""
    try:
        return await chunks.__anext__()
    except StopAsyncIteration:
        await send_error(send, EngineFailure("the generation ended without a chunk"))
    except Exception as e:
        error = as_api_error(e)
        if isinstance(error, EngineFailure):
            logger.error("axllm.serve: %s", error.message)
        await send_error(send, error)
    return None


def stream_reply(
    queue: ModelQueue, reply: Reply, ids: list[int], config: GenerationConfig, include_usage: bool
) -> Produce:
    """A producer streaming the generation as server-sent events (see ``axllm.serve.protocol``)."""

    async def produce(send: Send) -> None:
        info = RunInfo()
        chunks = queue.generate(ids, config, info)
        try:
            chunk = await _first(chunks, send)
            if chunk is None:
                return
            await send({"type": "http.response.start", "status": 200, "headers": SSE_HEADERS})
            events = [sse(reply.chunk("", role=True, include_usage=include_usage))] if reply.chat else []
            try:
                while True:
                    if chunk.text:
                        events.append(reply.delta_event(chunk.text, include_usage))
                    if chunk.finish_reason is not None:
                        break
                    await send({"type": "http.response.body", "body": b"".join(events), "more_body": True})
                    events = []
                    chunk = await chunks.__anext__()
            except Exception as e:
                error = as_api_error(e)
                logger.error("axllm.serve: generation failed mid-stream: %s", error.message)
                events.append(sse(error.body()))
                await send({"type": "http.response.body", "body": b"".join(events), "more_body": False})
                return
            assert chunk.metrics is not None
            last = reply.chunk(finish=chunk.finish_reason, include_usage=include_usage)
            last["axllm"] = extension(chunk.metrics, chunk.finish_reason, info)
            events.append(sse(last))
            if include_usage:
                events.append(sse(reply.usage_chunk(chunk.metrics)))
            events.append(DONE)
            await send({"type": "http.response.body", "body": b"".join(events), "more_body": False})
        finally:
            await chunks.aclose()

    return produce


def whole_reply(queue: ModelQueue, reply: Reply, ids: list[int], config: GenerationConfig) -> Produce:
    """A producer answering with one JSON object once the generation is complete."""

    async def produce(send: Send) -> None:
        info = RunInfo()
        chunks = queue.generate(ids, config, info)
        try:
            chunk = await _first(chunks, send)
            if chunk is None:
                return
            texts = [chunk.text]
            try:
                while chunk.finish_reason is None:
                    chunk = await chunks.__anext__()
                    texts.append(chunk.text)
            except Exception as e:
                error = as_api_error(e)
                logger.error("axllm.serve: generation failed: %s", error.message)
                await send_error(send, error)
                return
            assert chunk.metrics is not None and chunk.finish_reason is not None
            await send_json(send, 200, reply.whole("".join(texts), chunk.finish_reason, chunk.metrics, info))
        finally:
            await chunks.aclose()

    return produce
