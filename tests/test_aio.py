"""axllm.aio on tiny models: agenerate/achat/astream equal the synchronous API, the event loop
keeps running while a generation runs, stopping early (break, aclose, cancellation) ends the worker
thread and cancels the generation, and worker exceptions reach the consumer. A fake LLM checks the
threading contract: one worker thread per stream makes every call on the generator."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest
import torch  # noqa: F401
import transformers  # noqa: F401
from helpers.tiny_models import TinyConfig, make_model, save_model  # noqa: E402
from helpers.tiny_tokenizer import write_tiny_tokenizer  # noqa: E402

import axllm  # noqa: E402
from axllm import aio  # noqa: E402
from axllm.build import BuildOptions, build  # noqa: E402
from axllm.generation import Chunk, Metrics  # noqa: E402

DEADLINE = 10.0
LONG_PROMPT = [5] * 100  # greedy on the "slow" model runs to max_new_tokens from this prompt


@pytest.fixture(scope="module")
def llm(tmp_path_factory):
    cfg = TinyConfig("qwen2", num_heads=4, num_kv_heads=2, vocab_size=300, seed=41)
    hf = save_model(make_model(cfg), tmp_path_factory.mktemp("aio") / "hf")
    write_tiny_tokenizer(hf)
    out = build(
        hf,
        tmp_path_factory.mktemp("aiob"),
        BuildOptions(prefill_len=8, kv_cache_len=96, hidden_state_type="fp32", weight_type="fp32"),
    )
    return axllm.LLM(out)


@pytest.fixture(scope="module")
def slow_llm(tmp_path_factory):
    """A model whose generations take well over 100 ms on the host engine."""
    cfg = TinyConfig(
        "llama",
        hidden_size=512,
        num_heads=8,
        num_kv_heads=2,
        head_dim=64,
        intermediate_size=2048,
        num_layers=4,
        vocab_size=300,
        seed=5,
    )
    hf = save_model(make_model(cfg), tmp_path_factory.mktemp("aioslow") / "hf")
    write_tiny_tokenizer(hf)
    out = build(
        hf,
        tmp_path_factory.mktemp("aioslowb"),
        BuildOptions(prefill_len=64, kv_cache_len=256, hidden_state_type="fp32", weight_type="fp32"),
    )
    return axllm.LLM(out)


def _workers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("axllm-astream")]


async def _threads_back_to(baseline: int) -> None:
    end = time.monotonic() + DEADLINE
    while threading.active_count() != baseline or _workers():
        if time.monotonic() > end:
            pytest.fail(f"worker threads left running: {_workers()}")
        await asyncio.sleep(0.005)


async def _collect(stream) -> list[Chunk]:
    return [chunk async for chunk in stream]


def test_agenerate_and_achat_equal_the_sync_calls(llm):
    want = llm.generate("hello there", max_new_tokens=40, temperature=0)
    messages = [{"role": "user", "content": "hi"}]
    want_chat = llm.chat(messages, max_new_tokens=20, temperature=0)
    got = asyncio.run(aio.agenerate(llm, "hello there", max_new_tokens=40, temperature=0))
    got_chat = asyncio.run(aio.achat(llm, messages, max_new_tokens=20, temperature=0))
    assert (got.text, got.token_ids, got.finish_reason) == (want.text, want.token_ids, "length")
    assert got.metrics.generated_tokens == 40
    assert (got_chat.text, got_chat.token_ids, got_chat.finish_reason) == (
        want_chat.text,
        want_chat.token_ids,
        want_chat.finish_reason,
    )


def test_astream_chunks_concatenate_to_the_completion(llm):
    whole = llm.generate("xyz", max_new_tokens=60, temperature=0)
    stop = whole.text[11:15]
    cut = llm.generate("xyz", max_new_tokens=60, temperature=0, stop=stop)
    chunks = asyncio.run(_collect(aio.astream(llm, "generate", "xyz", max_new_tokens=60, temperature=0)))
    assert "".join(c.text for c in chunks) == whole.text
    assert [t for c in chunks for t in c.token_ids] == whole.token_ids
    assert all(c.finish_reason is None for c in chunks[:-1])
    assert chunks[-1].finish_reason == "length" and chunks[-1].metrics.generated_tokens == 60
    got = asyncio.run(aio.agenerate(llm, "xyz", max_new_tokens=60, temperature=0, stop=stop))
    assert (got.text, got.finish_reason, got.stop) == (cut.text, "stop", stop)


def test_event_loop_stays_responsive(slow_llm):
    want = slow_llm.generate(LONG_PROMPT, max_new_tokens=150, temperature=0)

    async def main():
        ticks: list[float] = []
        running = True

        async def ticker():
            while running:
                ticks.append(time.perf_counter())
                await asyncio.sleep(0.001)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0.01)
        t0 = time.perf_counter()
        got = await aio.agenerate(slow_llm, LONG_PROMPT, max_new_tokens=150, temperature=0)
        t1 = time.perf_counter()
        running = False
        await task
        return got, t1 - t0, [x for x in ticks if t0 < x < t1]

    got, duration, inside = asyncio.run(main())
    assert got.token_ids == want.token_ids and got.finish_reason == "length"
    assert duration > 0.1
    assert len(inside) > duration / 0.001 * 0.3, (len(inside), duration)


def test_break_ends_the_worker_and_the_next_generation_works(llm):
    want = llm.generate("again", max_new_tokens=10, temperature=0)

    async def main():
        baseline = threading.active_count()
        seen = 0
        async for _chunk in aio.astream(llm, "generate", "other", max_new_tokens=80, temperature=0):
            seen += 1
            if seen == 3:
                break
        await _threads_back_to(baseline)
        got = await aio.agenerate(llm, "again", max_new_tokens=10, temperature=0)
        await _threads_back_to(baseline)
        return seen, got

    seen, got = asyncio.run(main())
    assert seen == 3
    assert got.token_ids == want.token_ids
    assert llm.generate("again", max_new_tokens=10, temperature=0).token_ids == want.token_ids


def test_aclose_cancels_the_generation_promptly(slow_llm):
    t0 = time.perf_counter()
    full = slow_llm.generate(LONG_PROMPT, max_new_tokens=150, temperature=0)
    full_s = time.perf_counter() - t0
    assert full.finish_reason == "length"

    async def main():
        baseline = threading.active_count()
        stream = aio.astream(slow_llm, "generate", LONG_PROMPT, max_new_tokens=150, temperature=0)
        first = await stream.__anext__()
        assert first.finish_reason is None
        t = time.perf_counter()
        await stream.aclose()
        closed_s = time.perf_counter() - t
        assert threading.active_count() == baseline and not _workers()  # joined by aclose
        return closed_s

    closed_s = asyncio.run(main())
    assert closed_s < full_s / 2, (closed_s, full_s)


def test_task_cancellation_ends_the_worker(slow_llm):
    async def main():
        baseline = threading.active_count()
        started = asyncio.Event()

        async def consume():
            async for _ in aio.astream(slow_llm, "generate", LONG_PROMPT, max_new_tokens=150, temperature=0):
                started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), DEADLINE)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert threading.active_count() == baseline and not _workers()

    asyncio.run(main())
    assert slow_llm.generate([7, 8, 9], max_new_tokens=3, temperature=0).finish_reason == "length"


def test_worker_exceptions_reach_the_consumer(llm):
    async def main():
        baseline = threading.active_count()
        with pytest.raises(ValueError, match="top_p"):
            await aio.agenerate(llm, "x", max_new_tokens=5, top_p=5)
        with pytest.raises(ValueError, match="max_new_tokens"):
            await _collect(aio.astream(llm, "chat", [{"role": "user", "content": "x"}], max_new_tokens=0))
        with pytest.raises(TypeError, match="prompt"):
            await aio.agenerate(llm, 3.5)
        await _threads_back_to(baseline)

    asyncio.run(main())
    with pytest.raises(ValueError, match="method"):
        asyncio.run(_collect(aio.astream(llm, "stop")))
    with pytest.raises(TypeError, match="stream"):
        asyncio.run(_collect(aio.astream(llm, "generate", "x", stream=False)))


class _FakeLLM:
    """Streams ``n`` chunks (optionally raising at step ``fail_at``) and records the thread of
    every call on the stream, and the thread that closed it."""

    def __init__(self, n: int, fail_at: int = -1):
        self.n, self.fail_at = n, fail_at
        self.calls: list[int] = []
        self.closed_on: list[int] = []

    def generate(self, prompt: str, *, stream: bool = False):
        assert stream
        self.calls.append(threading.get_ident())
        return self._chunks()

    def _chunks(self):
        try:
            for i in range(self.n):
                self.calls.append(threading.get_ident())
                if i == self.fail_at:
                    raise KeyError("boom")
                last = i == self.n - 1
                yield Chunk(str(i), [i], "length" if last else None, Metrics() if last else None)
        finally:
            self.closed_on.append(threading.get_ident())


def test_one_worker_thread_makes_every_call_on_the_stream():
    fake = _FakeLLM(50)
    got = asyncio.run(aio.agenerate(fake, "p"))
    assert got.text == "".join(str(i) for i in range(50)) and got.finish_reason == "length"
    assert len(set(fake.calls)) == 1 and fake.closed_on == fake.calls[:1]
    assert fake.calls[0] != threading.get_ident()


def test_early_stop_closes_the_stream_on_its_worker_thread():
    fake = _FakeLLM(10**9)

    async def main():
        stream = aio.astream(fake, "generate", "p")
        async for chunk in stream:
            if chunk.text == "3":
                break
        await stream.aclose()

    asyncio.run(main())
    assert len(set(fake.calls)) == 1 and fake.closed_on == fake.calls[:1]
    assert not _workers()


def test_exception_mid_stream_after_chunks():
    fake = _FakeLLM(10, fail_at=4)

    async def main():
        texts = []
        with pytest.raises(KeyError, match="boom"):
            async for chunk in aio.astream(fake, "generate", "p"):
                texts.append(chunk.text)
        return texts

    assert asyncio.run(main()) == ["0", "1", "2", "3"]
    assert fake.closed_on == fake.calls[:1]
    assert not _workers()


def test_concurrent_astream_equal_sequential(llm):
    prompts = [f"prompt {i} " + "ab" * (i % 5) for i in range(20)]
    want = [llm.generate(p, max_new_tokens=20, temperature=0) for p in prompts]

    async def one(prompt: str) -> tuple[str, list[int]]:
        chunks = await _collect(llm.astream(prompt, max_new_tokens=20, temperature=0))
        return "".join(c.text for c in chunks), [t for c in chunks for t in c.token_ids]

    async def main():
        return await asyncio.gather(*(one(p) for p in prompts))

    got = asyncio.run(main())
    assert got == [(w.text, w.token_ids) for w in want]


def test_loop_shutdown_with_a_stream_open_finalizes_it_cleanly(slow_llm):
    llm = slow_llm
    want = llm.generate("again", max_new_tokens=10, temperature=0).token_ids
    errors = []

    async def main():
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: errors.append(context))
        stream = aio.astream(llm, "generate", LONG_PROMPT, max_new_tokens=150, temperature=0)
        first = await stream.__anext__()
        assert first.finish_reason is None
        return stream  # still open when asyncio.run shuts the loop down

    baseline = threading.active_count()
    stream = asyncio.run(main())
    assert not errors, errors
    assert threading.active_count() == baseline and not _workers(), "the worker was joined"
    assert llm.generate("again", max_new_tokens=10, temperature=0).token_ids == want
    del stream
