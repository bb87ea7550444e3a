"""``Engine``: one model shared by all requests, one request at a time, in arrival order.

Contract:

* A request holds the model from before its KV restore to after its KV snapshot: the restore, the
  generation and the snapshot of one request never interleave with another's. Requests take the
  model strictly in arrival order (an ``asyncio.Lock`` queue, which admits no barging).
* At most ``max_queue`` requests wait while one holds the model; ``generate`` raises ``QueueFull``
  (with a ``Retry-After`` estimate from recent service times) before waiting when that many
  already do.
* Closing ``generate``'s iterator early (the client went away, the request timed out) calls
  ``LLM.stop()``, which cancels the running generation at its next layer, prefill chunk or decode
  step, then closes the ``LLM.astream`` iterator, which joins its worker thread; only then is the
  model handed to the next request. A cancelled task that was waiting for the model leaves the
  queue.
* With ``kv_slots > 0``, before generating, the KV cache of the stored conversation sharing the
  longest prefix with the prompt is restored when it shares more than the live cache does; after
  a generation that finished (stop, length, context full), the cache is snapshotted into the
  slots. Snapshots run when the caller resumes the iterator after the final chunk, so a caller
  that answers its client first does not make it wait for them.
* The server must be the model's only user while it runs (restore and snapshot are not guarded
  against generations started elsewhere on the same ``LLM``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable, Optional, TypeVar

from axllm.generation import Chunk
from axllm.llm import LLM
from axllm.serve.errors import QueueFull
from axllm.serve.slots import KvSlots, common_prefix

logger = logging.getLogger("axllm.serve")
T = TypeVar("T")
RETRY_AFTER_MAX = 60
OUTCOMES = ("completed", "cancelled", "failed", "rejected")


@dataclass
class RunInfo:
    """What happened to one request besides its chunks: ``queue_ms`` spent waiting for the model,
    ``restored_tokens`` shared with a KV slot that was restored for it (0: none was)."""

    queue_ms: float = 0.0
    restored_tokens: int = 0


async def in_thread(fn: Callable[..., T], *args: Any) -> T:
    """``fn(*args)`` on the default executor. If the awaiting task is cancelled, this still waits
    for ``fn`` to return before raising ``CancelledError``, so the model is never left in use."""
    fut = asyncio.get_running_loop().run_in_executor(None, fn, *args)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(fut)
            break
        except asyncio.CancelledError:
            if fut.done():
                raise
            cancelled = True
    if cancelled:
        raise asyncio.CancelledError()
    return result


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

    def _get_lock(self) -> asyncio.Lock:
        if self._lock is None:  # created in the serving loop (Python 3.9 binds locks at creation)
            self._lock = asyncio.Lock()
        return self._lock

    async def generate(self, ids: list[int], kwargs: dict[str, Any], info: RunInfo) -> AsyncIterator[Chunk]:
        """The chunks of ``LLM.generate(ids, **kwargs)`` once the model is this request's turn;
        ``info`` is filled in before the first chunk. Raises ``QueueFull`` before waiting, and
        what the generation raises (``ValueError``, ``axllm.AxllmError``)."""
        lock = self._get_lock()
        if (lock.locked() or self._waiting) and self._waiting >= self.max_queue:
            self.counts["rejected"] += 1
            raise QueueFull(f"the server is busy: {self._waiting} requests are waiting for the "
                            f"model (--max-queue {self.max_queue}); retry later", self.retry_after())
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
        self._busy = True
        outcome = "failed"
        try:
            await self._restore(ids, info)
            final: Optional[Chunk] = None
            chunks = self.llm.astream(ids, **kwargs)
            try:
                async for chunk in chunks:
                    if chunk.finish_reason is not None:
                        final = chunk
                    yield chunk
            except (GeneratorExit, asyncio.CancelledError):
                ended = final is not None and final.finish_reason != "cancelled"
                outcome = "completed" if ended else "cancelled"
                raise
            finally:
                if final is None:
                    self.llm.stop()
                await chunks.aclose()
            if final is not None and final.finish_reason == "cancelled":
                outcome = "cancelled"
            elif final is not None:
                outcome = "completed"
                await self._save()
        finally:
            self._busy = False
            elapsed = time.perf_counter() - start
            self._service_s = 0.8 * self._service_s + 0.2 * elapsed
            self.counts[outcome] += 1
            lock.release()

    async def _restore(self, ids: list[int], info: RunInfo) -> None:
        if self.slots.capacity == 0 or not len(self.slots):
            return
        snap, shared = self.slots.best(ids)
        if snap is None or shared <= common_prefix(self.llm.cached_tokens, ids):
            return
        await in_thread(self.llm.restore, snap)
        self.slots.use(snap)
        info.restored_tokens = shared

    async def _save(self) -> None:
        if self.slots.capacity == 0:
            return
        try:
            self.slots.save(await in_thread(self.llm.snapshot))
        except Exception:  # the reply is already out; a failed snapshot only costs reuse
            logger.exception("axllm.serve: KV snapshot failed")
