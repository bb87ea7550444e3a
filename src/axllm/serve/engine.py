"""``Engine``: one model shared by all requests, one request at a time, in arrival order.

Contract:

* Each request's work on the model (KV restore, generation, KV snapshot) runs as one asyncio task
  that holds the model throughout: the work of two requests never interleaves. Requests take the
  model strictly in arrival order (an ``asyncio.Lock`` queue, which admits no barging).
* The task hands chunks to the request's reader through an unbounded queue and lets go of the
  model as soon as the generation (and snapshot) is over, however slowly the reader reads: a
  client that stops reading cannot hold the model.
* At most ``max_queue`` requests wait while one holds the model; ``generate`` raises ``QueueFull``
  (with a ``Retry-After`` estimate from recent service times) when that many already do.
* The model is only touched on one ``ModelThread`` (``axllm.serve.worker``): generations run as
  ``LLM.generate(ids, stream=True)`` iterated there, restores and snapshots are jobs there too.
* Closing ``generate``'s iterator before its final chunk (the client went away, the request timed
  out) cancels the task: it calls ``LLM.stop()``, which cancels the generation at its next layer,
  prefill chunk or decode step, waits until the model thread has closed the generation, then
  hands the model to the next request; closing returns after that. A request still waiting for the
  model leaves the queue. Closing after the final chunk leaves the task to finish its snapshot.
* With ``kv_slots > 0``, before generating, the KV cache of the stored conversation sharing the
  longest prefix with the prompt is restored when it shares more than the live cache does; after
  a generation that finished (stop, length, context full), the cache is snapshotted into the
  slots (after the final chunk has been handed over, so the reply does not wait for it).
* The server must be the model's only user while it runs (restore and snapshot are not guarded
  against generations started elsewhere on the same ``LLM``). ``close()`` ends the model thread.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Optional

from axllm.generation import Chunk
from axllm.llm import LLM
from axllm.serve.errors import QueueFull
from axllm.serve.slots import KvSlots, common_prefix
from axllm.serve.worker import ModelThread

logger = logging.getLogger("axllm.serve")
RETRY_AFTER_MAX = 60
OUTCOMES = ("completed", "cancelled", "failed", "rejected")
_CHUNK, _END, _ERROR = "chunk", "end", "error"


@dataclass
class _Turn:
    """Whether a request's task holds the model (so ``LLM.stop()`` would stop its generation)."""

    holding: bool = False


@dataclass
class RunInfo:
    """What happened to one request besides its chunks: ``queue_ms`` spent waiting for the model,
    ``restored_tokens`` shared with a KV slot that was restored for it (0: none was)."""

    queue_ms: float = 0.0
    restored_tokens: int = 0


class Engine:
    """The model behind the server; see the module docstring for the contract."""

    def __init__(self, llm: LLM, *, max_queue: int, kv_slots: int):
        self.llm = llm
        self.max_queue = max_queue
        self.slots = KvSlots(kv_slots)
        self.counts = {k: 0 for k in OUTCOMES}
        self._lock: Optional[asyncio.Lock] = None
        self._waiting = 0
        self._busy = False
        self._service_s = 1.0
        self._thread = ModelThread()
        self._tasks: set[asyncio.Task] = set()

    @property
    def busy(self) -> bool:
        """Whether a request holds the model."""
        return self._busy

    @property
    def waiting(self) -> int:
        """Requests waiting for the model."""
        return self._waiting

    def retry_after(self) -> int:
        """Seconds after which a queue slot has likely freed: about one recent service time."""
        return max(1, min(RETRY_AFTER_MAX, math.ceil(self._service_s)))

    def close(self) -> None:
        """Ends the model thread (after the job it runs)."""
        self._thread.close()

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:  # created in the serving loop (Python 3.9 binds locks at creation)
            self._lock = asyncio.Lock()
        return self._lock

    async def generate(self, ids: list[int], kwargs: dict[str, Any], info: RunInfo) -> AsyncIterator[Chunk]:
        """The chunks of ``LLM.generate(ids, **kwargs)`` once the model is this request's turn;
        ``info`` is filled in before the first chunk. Raises ``QueueFull``, and what the
        generation raises (``ValueError``, ``axllm.AxllmError``)."""
        lock = self._get_lock()
        if (lock.locked() or self._waiting) and self._waiting >= self.max_queue:
            self.counts["rejected"] += 1
            raise QueueFull(f"the server is busy: {self._waiting} requests are waiting for the "
                            f"model (--max-queue {self.max_queue}); retry later", self.retry_after())
        inbox: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        turn = _Turn()
        task = asyncio.ensure_future(self._run(lock, turn, ids, kwargs, info, inbox))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        delivered_final = False
        try:
            while True:
                kind, value = await inbox.get()
                if kind == _END:
                    return
                if kind == _ERROR:
                    raise value
                delivered_final = value.finish_reason is not None
                yield value
        finally:
            if not delivered_final and not task.done():
                if turn.holding:  # stop a step under way now, not after it (a long prefill)
                    self.llm.stop()
                task.cancel()
                await asyncio.wait({task})

    async def _run(self, lock: asyncio.Lock, turn: _Turn, ids: list[int], kwargs: dict[str, Any],
                   info: RunInfo, inbox: asyncio.Queue) -> None:
        """The request's work on the model, posting ``(_CHUNK, chunk)`` messages and then one
        ``_END`` or ``(_ERROR, exception)`` to ``inbox``."""
        arrived = time.perf_counter()
        self._waiting += 1
        try:
            await lock.acquire()
        except asyncio.CancelledError:
            self.counts["cancelled"] += 1
            raise
        finally:
            self._waiting -= 1
        start = time.perf_counter()
        info.queue_ms = (start - arrived) * 1000
        self._busy = turn.holding = True
        outcome = "failed"
        try:
            await self._restore(ids, info)
            final = await self._stream(ids, kwargs, inbox)
            if final.finish_reason == "cancelled":
                outcome = "cancelled"
            else:
                outcome = "completed"
                await self._save()
            inbox.put_nowait((_END, None))
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        except Exception as e:
            inbox.put_nowait((_ERROR, e))
        finally:
            self._busy = turn.holding = False
            self._service_s = 0.8 * self._service_s + 0.2 * (time.perf_counter() - start)
            self.counts[outcome] += 1
            lock.release()

    async def _stream(self, ids: list[int], kwargs: dict[str, Any], inbox: asyncio.Queue) -> Chunk:
        """Runs the generation on the model thread, posting its chunks; returns the final one."""
        final: Optional[Chunk] = None
        chunks = self._thread.stream(self.llm.generate, ids, stream=True, **kwargs)
        try:
            async for chunk in chunks:
                inbox.put_nowait((_CHUNK, chunk))
                if chunk.finish_reason is not None:
                    final = chunk
        finally:
            if final is None:
                self.llm.stop()
            await chunks.aclose()
        if final is None:
            raise RuntimeError("the generation ended without a final chunk")
        return final

    async def _restore(self, ids: list[int], info: RunInfo) -> None:
        if self.slots.capacity == 0 or not len(self.slots):
            return
        info.restored_tokens = await self._thread.call(self._restore_best, ids)

    def _restore_best(self, ids: list[int]) -> int:
        """On the model thread: restores the slot sharing the longest prefix with ``ids`` when it
        shares more than the live cache; returns the tokens it shares (0: nothing restored)."""
        snap, shared = self.slots.best(ids)
        if snap is None or shared <= common_prefix(self.llm.cached_tokens, ids):
            return 0
        self.llm.restore(snap)
        self.slots.use(snap)
        return shared

    async def _save(self) -> None:
        if self.slots.capacity == 0:
            return
        try:
            self.slots.save(await self._thread.call(self.llm.snapshot))
        except Exception:  # the reply is already out; a failed snapshot only costs reuse
            logger.exception("axllm.serve: KV snapshot failed")
