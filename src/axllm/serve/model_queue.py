"""``ModelQueue``: one model shared by all requests, one request at a time, in arrival order.

Contract:

* Each request's work on the model (KV restore, generation, KV snapshot) is one job on a
  ``ThreadPoolExecutor(max_workers=1)``: jobs run one after another in submission order, always on
  the same thread (runtimes that bind device contexts to a thread, like AXCL, need that), so the work
  of two requests never interleaves and requests are served strictly in arrival order.
* The job hands chunks to the request's reader through ``axllm.stream_bridge.StreamBridge`` (an
  unbounded queue): it lets go of the model as soon as the generation (and snapshot) is over,
  however slowly the reader reads; a client that stops reading cannot hold the model.
* At most ``max_queue`` requests wait while one holds the model; ``generate`` raises ``QueueFull``
  (with a ``Retry-After`` estimate from recent service times) when that many already do.
* Closing ``generate``'s iterator before its final chunk (the client went away, the request timed
  out) withdraws a job that has not started; a job under way is told to stop (``LLM.stop()``
  cancels the generation at its next layer, prefill chunk or decode step) and closing returns once
  the job has closed its generation, so the next request starts on a model that is free.
* With ``kv_slots > 0``, before generating, the KV cache of the stored conversation sharing the
  longest prefix with the prompt is restored when it shares more than the live cache does; after
  a generation that finished (stop, length, context full), the cache is snapshotted into the
  slots after the final chunk has been handed over (the reply does not wait for it).
* The server must be the model's only user while it runs. ``close()`` waits for the job under way
  and ends the thread.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from axllm.generation import Chunk, GenerationConfig
from axllm.llm import LLM
from axllm.serve.errors import QueueFull
from axllm.serve.slots import KvSlots, common_prefix
from axllm.stream_bridge import END, StreamBridge

logger = logging.getLogger("axllm.serve")
RETRY_AFTER_MAX = 60
OUTCOMES = ("completed", "cancelled", "failed", "rejected")


@dataclass
class RunInfo:
    """What happened to one request besides its chunks: ``queue_ms`` spent waiting for the model,
    ``restored_tokens`` shared with a KV slot that was restored for it (0: none was)."""

    queue_ms: float = 0.0
    restored_tokens: int = 0


@dataclass
class _Job:
    """One request's state shared between the event loop and the model thread."""

    started: bool = False
    finished: bool = False
    withdrawn: bool = False


class ModelQueue:
    """The model behind the server; see the module docstring for the contract."""

    def __init__(self, llm: LLM, *, max_queue: int, kv_slots: int):
        self.llm = llm
        self.max_queue = max_queue
        self.slots = KvSlots(kv_slots)
        self.counts = {k: 0 for k in OUTCOMES}
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="axllm-serve-model")
        self._mutex = threading.Lock()  # guards the fields below, shared with the model thread
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

    def close(self) -> None:
        """Waits for the job under way and ends the model thread."""
        self._executor.shutdown(wait=True, cancel_futures=True)

    async def generate(
        self, ids: list[int], config: GenerationConfig, info: RunInfo
    ) -> AsyncGenerator[Chunk, None]:
        """The chunks of ``LLM.generate(ids, config)`` once the model is this request's turn;
        ``info`` is filled in before the first chunk. Raises ``QueueFull``, and what the
        generation raises (``ValueError``, ``axllm.AxllmError``)."""
        with self._mutex:
            if (self._busy or self._waiting) and self._waiting >= self.max_queue:
                self.counts["rejected"] += 1
                raise QueueFull(
                    f"the server is busy: {self._waiting} requests are waiting for the "
                    f"model (--max-queue {self.max_queue}); retry later",
                    self.retry_after(),
                )
            self._waiting += 1
        job = _Job()
        bridge: StreamBridge[Chunk] = StreamBridge()
        future = self._executor.submit(self._run, job, bridge, ids, config, info, time.perf_counter())
        delivered_final = False
        try:
            while (chunk := await bridge.next()) is not END:
                delivered_final = chunk.finish_reason is not None
                yield chunk
        finally:
            if not delivered_final:
                with self._mutex:
                    job.withdrawn = True
                    if job.started and not job.finished:
                        self.llm.stop()  # stop a step under way now, not after it (a prefill chunk)
                    started = job.started
                if not started and future.cancel():
                    with self._mutex:
                        self._waiting -= 1
                        self.counts["cancelled"] += 1
                else:
                    await bridge.close()

    def _run(
        self,
        job: _Job,
        bridge: StreamBridge[Chunk],
        ids: list[int],
        config: GenerationConfig,
        info: RunInfo,
        arrived: float,
    ) -> None:
        """The request's work, on the model thread; never raises (``bridge`` carries everything)."""
        bridge.produce(self._work, job, ids, config, info, arrived)

    def _work(
        self, job: _Job, ids: list[int], config: GenerationConfig, info: RunInfo, arrived: float
    ) -> Iterator[Chunk]:
        """Restores the best KV slot, yields the generation's chunks, then snapshots the cache
        into the slots; the books (counts, busy, service time) are done before it ends, so before
        the reader sees the end of the stream."""
        start = time.perf_counter()
        with self._mutex:
            self._waiting -= 1
            job.started = True
            self._busy = not job.withdrawn
        outcome = "cancelled"
        try:
            if job.withdrawn:
                return
            info.queue_ms = (start - arrived) * 1000
            info.restored_tokens = self._restore_best(ids)
            outcome = "failed"
            for chunk in self.llm.generate(ids, config, stream=True):
                if chunk.finish_reason is not None:
                    outcome = "cancelled" if chunk.finish_reason == "cancelled" else "completed"
                yield chunk
            if outcome == "completed":
                self._save()
        except GeneratorExit:
            outcome = "cancelled"
            raise
        finally:
            with self._mutex:
                job.finished = True
                self._busy = False
                self._service_s = 0.8 * self._service_s + 0.2 * (time.perf_counter() - start)
                self.counts[outcome] += 1

    def _restore_best(self, ids: list[int]) -> int:
        """Restores the slot sharing the longest prefix with ``ids`` when it shares more than the
        live cache; returns the tokens it shares (0: nothing restored)."""
        if self.slots.capacity == 0 or not len(self.slots):
            return 0
        snap, shared = self.slots.best(ids)
        if snap is None or shared <= common_prefix(self.llm.cached_tokens, ids):
            return 0
        self.llm.restore(snap)
        self.slots.use(snap)
        return shared

    def _save(self) -> None:
        if self.slots.capacity == 0:
            return
        try:
            self.slots.save(self.llm.snapshot())
        except Exception:  # the reply is already out; a failed snapshot only costs reuse
            logger.exception("axllm.serve: KV snapshot failed")
