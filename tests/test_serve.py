"""axllm.serve through the official ``openai`` client, against servers on free loopback ports.

A tiny fp32 model serves every test: chat and text completions equal ``LLM.chat`` /
``LLM.generate`` for the same greedy request (streamed or not), streamed deltas reassemble exactly,
stop strings work across chunk boundaries, usage counts are right, a continued conversation
reports cached tokens (live cache and KV slots), 20 concurrent streaming clients get their
sequential results, a client closing its stream after 3 chunks frees the engine, bad requests get
the right status and OpenAI's error shape and the server keeps serving, a full queue answers 503
with Retry-After, timeouts cancel, and ``python -m axllm.serve`` starts and stops. The real
Qwen2.5-Coder-0.5B (real_model) repeats the equality, cache, concurrency and disconnect tests.
"""

from __future__ import annotations

import asyncio
import json
import queue
import random
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest
import starlette  # noqa: F401
import torch  # noqa: F401
import transformers  # noqa: F401
import uvicorn
from helpers.child_processes import signalled_child  # noqa: E402
from helpers.tiny_models import build_endless_tiny_model  # noqa: E402

import axllm  # noqa: E402
from axllm.serve import ServeConfig, create_app  # noqa: E402
from axllm.serve.__main__ import is_loopback, parse_args  # noqa: E402

KEY = "test-key"
DEADLINE = 20.0


class ServerThread:
    """``create_app(llm, config)`` served by uvicorn on a free loopback port, in a thread with its
    own event loop; a context manager."""

    def __init__(self, llm, config: ServeConfig):
        self.app = create_app(llm, config)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.server = uvicorn.Server(uvicorn.Config(self.app, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    @property
    def queue(self):
        return self.app.state.server.queue

    def client(self, key: str = KEY, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, **kwargs)

    def health(self) -> dict:
        return httpx.get(self.url + "/health", timeout=10).json()

    def wait_idle(self) -> dict:
        end = time.monotonic() + DEADLINE
        while True:
            h = self.health()
            if not h["busy"] and not h["waiting"]:
                return h
            if time.monotonic() > end:
                pytest.fail(f"the engine stayed busy: {h}")
            time.sleep(0.005)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        end = time.monotonic() + DEADLINE
        while not self.server.started:
            if time.monotonic() > end or not self.thread.is_alive():
                pytest.fail("the server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(DEADLINE)
        self.sock.close()


class SlowLLM:
    """An LLM whose streams pause before each chunk, to hold the engine for a known time."""

    def __init__(self, llm, pause: float):
        self._llm = llm
        self._pause = pause

    def __getattr__(self, name):
        return getattr(self._llm, name)

    def generate(self, prompt, config=None, **kwargs):
        inner = self._llm.generate(prompt, config, **kwargs)

        def chunks():
            try:
                for chunk in inner:
                    time.sleep(self._pause)
                    yield chunk
            finally:
                inner.close()

        return chunks() if kwargs.get("stream") else inner


def user(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def extra(obj) -> dict:
    return (obj.model_extra or {}).get("axllm")


def stream_chat(client: openai.OpenAI, messages, **kwargs):
    """(text, chunks) of a streamed chat completion."""
    chunks = list(client.chat.completions.create(model="m", messages=messages, stream=True, **kwargs))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    return text, chunks


def error_of(e: openai.APIStatusError) -> dict:
    body = e.response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    return body["error"]


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory):
    """The tiny model; its only EOS is id 299, which no prompt here reaches, so greedy replies run
    to max_tokens (or a stop string)."""
    return build_endless_tiny_model(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def llm(tiny_dir):
    return axllm.LLM(tiny_dir)


@pytest.fixture(scope="module")
def srv(llm):
    config = ServeConfig(api_key=KEY, max_body_bytes=64 << 10, max_prompt_tokens=300, request_timeout=60)
    with ServerThread(llm, config) as s:
        yield s


@pytest.fixture(scope="module")
def client(srv):
    return srv.client()


def test_models_and_health(srv, client, tiny_dir):
    assert [m.id for m in client.models.list().data] == [tiny_dir.name]
    assert client.models.retrieve(tiny_dir.name).id == tiny_dir.name
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve("other")
    assert error_of(e.value)["code"] == "model_not_found"
    h = srv.health()
    assert h["status"] == "ok" and h["model"] == tiny_dir.name and h["busy"] is False


def test_chat_equals_llm_chat_streamed_or_not(srv, client, llm):
    messages = [{"role": "system", "content": "be brief"}, *user("The quick brown fox")]
    want = llm.chat(messages, max_new_tokens=24, temperature=0)
    ids = llm.tokenize(llm.apply_chat_template(messages), add_special_tokens=False)
    got = client.chat.completions.create(model="m", messages=messages, max_tokens=24, temperature=0)
    assert got.object == "chat.completion" and got.model == srv.app.state.server.model_id
    assert got.choices[0].message.role == "assistant"
    assert got.choices[0].message.content == want.text
    assert got.choices[0].finish_reason == want.finish_reason
    assert got.usage.prompt_tokens == len(ids) == want.metrics.prompt_tokens
    assert got.usage.completion_tokens == want.metrics.generated_tokens
    assert got.usage.total_tokens == len(ids) + want.metrics.generated_tokens
    assert got.usage.prompt_tokens_details.cached_tokens in (0, len(ids) - 1)  # the engine may prefill afresh
    ext = extra(got)
    assert (
        ext["ttft_ms"] > 0 and ext["decode_tokens_per_s"] > 0 and ext["finish_reason"] == want.finish_reason
    )

    text, chunks = stream_chat(
        client, messages, max_tokens=24, temperature=0, stream_options={"include_usage": True}
    )
    assert text == want.text
    assert chunks[0].object == "chat.completion.chunk" and chunks[0].choices[0].delta.role == "assistant"
    assert len({c.id for c in chunks}) == 1
    final, usage = chunks[-2], chunks[-1]
    assert final.choices[0].finish_reason == want.finish_reason and extra(final)["ttft_ms"] > 0
    assert all(c.choices[0].finish_reason is None for c in chunks[:-2])
    assert usage.choices == [] and usage.usage.completion_tokens == want.metrics.generated_tokens
    assert usage.usage.prompt_tokens == len(ids)


def test_streamed_deltas_are_the_llm_chunks(client, llm):
    messages = user("client 7 says hello")
    want = [c.text for c in llm.chat(messages, max_new_tokens=40, temperature=0, stream=True) if c.text]
    _, chunks = stream_chat(client, messages, max_tokens=40, temperature=0)
    deltas = [c.choices[0].delta.content for c in chunks[1:] if c.choices[0].delta.content]
    assert deltas == want and len(deltas) > 3
    assert "".join(deltas) == llm.chat(messages, max_new_tokens=40, temperature=0).text


def test_completions_equal_llm_generate(client, llm):
    want = llm.generate("hello there", temperature=0, max_new_tokens=16)
    got = client.completions.create(model="m", prompt="hello there", temperature=0)
    assert got.object == "text_completion"
    assert (got.choices[0].text, got.choices[0].finish_reason) == (want.text, want.finish_reason)
    assert got.usage.completion_tokens == want.metrics.generated_tokens <= 16
    streamed = list(
        client.completions.create(
            model="m",
            prompt="hello there",
            temperature=0,
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    assert "".join(c.choices[0].text for c in streamed if c.choices) == want.text
    assert streamed[-1].usage.prompt_tokens == want.metrics.prompt_tokens
    ids = llm.tokenize("hi you")
    want = llm.generate(ids, temperature=0, max_new_tokens=9)
    got = client.completions.create(model="m", prompt=ids, temperature=0, max_tokens=9)
    assert got.choices[0].text == want.text and got.usage.prompt_tokens == len(ids)


def test_stop_across_chunk_boundaries(client, llm):
    messages = user("hi")
    full = llm.chat(messages, max_new_tokens=60, temperature=0).text
    assert len(full) > 20
    for start, length in ((3, 4), (9, 7)):
        stop = full[start : start + length]
        cut = full[: full.index(stop)]
        text, chunks = stream_chat(client, messages, max_tokens=60, temperature=0, stop=[stop, "\x00no"])
        assert text == cut and chunks[-1].choices[0].finish_reason == "stop"
        got = client.chat.completions.create(
            model="m", messages=messages, max_tokens=60, temperature=0, stop=stop
        )
        assert got.choices[0].message.content == cut and got.choices[0].finish_reason == "stop"


def test_continuing_conversation_reports_cached_tokens(client):
    messages = [{"role": "system", "content": "You are terse."}, *user("The quick brown fox")]
    first = client.chat.completions.create(model="m", messages=messages, max_tokens=12, temperature=0)
    messages += [{"role": "assistant", "content": first.choices[0].message.content}, *user("and then?")]
    second = client.chat.completions.create(model="m", messages=messages, max_tokens=12, temperature=0)
    assert second.usage.prompt_tokens_details.cached_tokens >= first.usage.prompt_tokens
    assert second.usage.prompt_tokens_details.cached_tokens < second.usage.prompt_tokens


def test_kv_slots_restore_the_conversation_sharing_the_longest_prefix(llm):
    a = [{"role": "system", "content": "You are terse."}, *user("The quick brown fox")]
    b = [{"role": "system", "content": "You are terse."}, *user("jumps over the lazy dog")]
    with ServerThread(llm, ServeConfig(api_key=KEY, kv_slots=2)) as s:
        c = s.client()
        first = c.chat.completions.create(model="m", messages=a, max_tokens=10, temperature=0)
        c.chat.completions.create(model="m", messages=b, max_tokens=10, temperature=0)
        a += [{"role": "assistant", "content": first.choices[0].message.content}, *user("and then?")]
        text, chunks = stream_chat(c, a, max_tokens=10, temperature=0, stream_options={"include_usage": True})
        cached = chunks[-1].usage.prompt_tokens_details.cached_tokens
        assert first.usage.prompt_tokens <= cached <= extra(chunks[-2])["restored_tokens"]
        ids_a, ids_b = (llm.tokenize(llm.apply_chat_template(m), add_special_tokens=False) for m in (a, b))
        shared_with_b = next(i for i, (x, y) in enumerate(zip(ids_a, ids_b)) if x != y)
        assert cached > shared_with_b + 10
        want = llm.chat(a, max_new_tokens=10, temperature=0)
        assert text == want.text
        h = s.wait_idle()
        assert h["kv_slots"]["used"] == 2 and h["kv_slots"]["bytes"] > 0


def test_20_concurrent_streams_equal_their_sequential_runs(srv, client):
    prompts = [f"client {i}: {'xyz' * (i % 4)} go" for i in range(20)]
    sequential = [stream_chat(client, user(p), max_tokens=12, temperature=0)[0] for p in prompts]
    barrier = threading.Barrier(20)

    def run(p):
        barrier.wait()
        text, chunks = stream_chat(client, user(p), max_tokens=12, temperature=0)
        return text, extra(chunks[-1])["queue_ms"], chunks[-1].choices[0].finish_reason

    with ThreadPoolExecutor(20) as pool:
        results = list(pool.map(run, prompts))
    assert [r[0] for r in results] == sequential
    assert all(r[2] in ("stop", "length") for r in results)
    assert max(r[1] for r in results) > 0
    h = srv.wait_idle()
    assert h["requests"]["failed"] == 0 and h["requests"]["rejected"] == 0


def test_closing_a_stream_after_3_chunks_frees_the_engine(llm):
    n = 460
    messages = user("tell me a long story")
    prompt_len = len(llm.tokenize(llm.apply_chat_template(messages), add_special_tokens=False))
    with ServerThread(SlowLLM(llm, 0.002), ServeConfig()) as s:  # >= 2 ms a token: >= 0.9 s in all
        c = s.client()
        stream = c.chat.completions.create(
            model="m", messages=messages, max_tokens=n, temperature=0, stream=True
        )
        for i, _ in enumerate(stream):
            if i == 3:
                break
        stream.close()
        h = s.wait_idle()
        assert h["requests"]["cancelled"] == 1 and h["requests"]["completed"] == 0
        generated = len(llm.cached_tokens) - prompt_len
        assert generated < 100, generated
        t0 = time.perf_counter()
        got = c.chat.completions.create(model="m", messages=user("next"), max_tokens=1, temperature=0)
        assert extra(got)["queue_ms"] < 50 and (time.perf_counter() - t0) < 2.0
        assert got.choices[0].message.content == llm.chat(user("next"), max_new_tokens=1, temperature=0).text


def test_a_reader_that_stops_reading_does_not_hold_the_model(llm):
    from axllm.serve.model_queue import ModelQueue, RunInfo

    ids = llm.tokenize(llm.apply_chat_template(user("slow reader")), add_special_tokens=False)
    other = llm.tokenize(llm.apply_chat_template(user("next one")), add_special_tokens=False)
    want = llm.generate(other, max_new_tokens=5, temperature=0).text

    async def main():
        queue = ModelQueue(llm, max_queue=4, kv_slots=1)
        try:
            stalled = queue.generate(
                ids, axllm.GenerationConfig(max_new_tokens=200, temperature=0), RunInfo()
            )
            await stalled.__anext__()  # then reads nothing more
            got = [
                c.text
                async for c in queue.generate(
                    other, axllm.GenerationConfig(max_new_tokens=5, temperature=0), RunInfo()
                )
            ]
            assert "".join(got) == want
            assert queue.counts["completed"] == 2 and not queue.busy and len(queue.slots) == 1
            rest = [c async for c in stalled]
            assert rest[-1].finish_reason == "length"
            await stalled.aclose()
        finally:
            queue.close()

    asyncio.run(main())


def test_bad_api_key_and_missing_key(srv, client):
    with pytest.raises(openai.AuthenticationError) as e:
        srv.client(key="wrong").chat.completions.create(model="m", messages=user("hi"), max_tokens=1)
    assert error_of(e.value)["code"] == "invalid_api_key"
    for headers in ({}, {"Authorization": "Bearer"}, {"Authorization": f"Basic {KEY}"}):
        r = httpx.post(srv.url + "/v1/chat/completions", json={"messages": user("hi")}, headers=headers)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(srv.url + "/v1/models").status_code == 401
    assert httpx.get(srv.url + "/health").status_code == 200
    assert (
        client.chat.completions.create(model="m", messages=user("hi"), max_tokens=2).usage.completion_tokens
        == 2
    )


@pytest.mark.parametrize(
    "kwargs,param,code",
    [
        ({"extra_body": {"temperatur": 0}}, "temperatur", "unknown_parameter"),
        ({"temperature": "hot"}, "temperature", "invalid_type"),
        ({"max_tokens": 2.5}, "max_tokens", "invalid_type"),
        ({"max_tokens": 0}, "max_tokens", "invalid_value"),
        ({"top_p": 1.5}, "top_p", "invalid_value"),
        ({"seed": -1}, "seed", "invalid_value"),
        ({"stop": ["a", 3]}, "stop", "invalid_type"),
        ({"n": 2}, "n", "unsupported_value"),
        ({"logprobs": True}, "logprobs", "unsupported_value"),
        ({"tools": [{"type": "function", "function": {"name": "f"}}]}, "tools", "unsupported_value"),
        (
            {"messages": [{"role": "tool", "content": "x", "tool_call_id": "1"}]},
            "messages[0].role",
            "unsupported_value",
        ),
        ({"messages": [{"role": "user", "content": 5}]}, "messages[0].content", "invalid_type"),
        (
            {"messages": [{"role": "user", "content": "x", "colour": "red"}]},
            "messages[0].colour",
            "unknown_parameter",
        ),
        ({"messages": []}, "messages", "invalid_value"),
        ({"stream_options": {"include_usage": "yes"}}, "stream_options.include_usage", "invalid_type"),
        ({"max_tokens": 2**70}, "max_tokens", "invalid_value"),
        ({"extra_body": {"overflow": "sideways"}}, "overflow", "invalid_value"),
        ({"temperature": 1e300}, "temperature", "invalid_value"),
    ],
)
def test_bad_fields_get_400_and_the_server_keeps_serving(client, kwargs, param, code):
    args = {"model": "m", "messages": user("hi"), "max_tokens": 2, **kwargs}
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(**args)
    err = error_of(e.value)
    assert (err["param"], err["code"], err["type"]) == (param, code, "invalid_request_error")
    assert param.split("[")[0].split(".")[0] in err["message"]
    assert (
        client.chat.completions.create(model="m", messages=user("hi"), max_tokens=2).usage.completion_tokens
        == 2
    )


@pytest.mark.parametrize(
    "body,status,code",
    [
        (b'{"messages": [', 400, "invalid_json"),
        (b"\xff\xfe\x00garbage", 400, "invalid_json"),
        (b'{"messages": [{"role": "user", "content": "hi"}], "temperature": NaN}', 400, "invalid_json"),
        (b"[" * 30000 + b"]" * 30000, 400, "invalid_json"),
        (b'["not", "an", "object"]', 400, "invalid_json"),
        (b'{"model": "m"}', 400, "missing_required_parameter"),
        (b"", 400, "invalid_json"),
        (b'{"messages": [{"role": "user", "content": "\\ud800"}]}', 400, "invalid_value"),
        (b'{"messages": "' + b"a" * (70 << 10) + b'"}', 413, "request_too_large"),
    ],
)
def test_malformed_and_huge_bodies(srv, client, body, status, code):
    r = httpx.post(
        srv.url + "/v1/chat/completions",
        content=body,
        headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
    )
    assert r.status_code == status
    assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert r.json()["error"]["code"] == code
    assert (
        client.chat.completions.create(model="m", messages=user("hi"), max_tokens=2).usage.completion_tokens
        == 2
    )


def test_fuzzed_fields_never_crash_the_server(srv, llm):
    rng = random.Random(7)
    values = [
        None,
        True,
        False,
        0,
        1,
        -1,
        2,
        0.5,
        -0.5,
        1e300,
        -1e300,
        2**31,
        2**64,
        2**70,
        "",
        "x",
        "\ud800",
        [],
        ["a"],
        [1, 2],
        {},
        {"type": "text"},
        {"a": {"b": [None]}},
        [[1]],
        "\x00" * 3,
    ]
    fields = [
        "max_tokens",
        "max_completion_tokens",
        "temperature",
        "top_p",
        "top_k",
        "min_p",
        "seed",
        "presence_penalty",
        "frequency_penalty",
        "repetition_penalty",
        "stop",
        "n",
        "stream",
        "stream_options",
        "logprobs",
        "response_format",
        "tools",
        "tool_choice",
        "user",
        "messages",
        "model",
        "prompt",
    ]
    statuses = set()
    for i in range(80):
        path = "/v1/chat/completions" if i % 2 else "/v1/completions"
        body = {"messages": user("fuzz")} if i % 2 else {"prompt": "fuzz"}
        body["max_tokens"] = 4
        for name in rng.sample(fields, rng.randint(1, 3)):
            body[name] = rng.choice(values)
        r = httpx.post(
            srv.url + path,
            content=json.dumps(body),
            timeout=60,
            headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"},
        )
        statuses.add(r.status_code)
        assert r.status_code in (200, 400), (body, r.status_code, r.text)
        if r.status_code == 400:
            assert set(r.json()["error"]) == {"message", "type", "param", "code"}
    assert statuses == {200, 400}
    h = srv.wait_idle()
    assert h["requests"]["failed"] == 0


def test_huge_body_through_the_client_and_chunked(srv, client):
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model="m", messages=user("a" * (1 << 20)), max_tokens=1)
    assert e.value.status_code == 413 and error_of(e.value)["code"] == "request_too_large"

    def chunked():
        yield b'{"messages": [{"role": "user", "content": "'
        for _ in range(100):
            yield b"a" * 1024
        yield b'"}]}'

    r = httpx.post(
        srv.url + "/v1/chat/completions", content=chunked(), headers={"Authorization": f"Bearer {KEY}"}
    )
    assert r.status_code == 413
    assert (
        client.chat.completions.create(model="m", messages=user("hi"), max_tokens=2).usage.completion_tokens
        == 2
    )


def test_overflow_policies_fit_a_long_prompt_instead_of_refusing_it(srv, client, llm):
    """``overflow`` (an axllm extension, GenerationConfig's field): truncate_left keeps the newest
    prompt tokens within the context's and the server's limits (--max-prompt-tokens 300 here);
    drop_oldest_turns drops whole turns until the prompt leaves room to reply."""
    ids = llm.tokenize("b" * 700)
    assert len(ids) > llm.context_length
    got = client.completions.create(
        model="m", prompt=ids, max_tokens=2, temperature=0, extra_body={"overflow": "truncate_left"}
    )
    assert got.usage.prompt_tokens == 300 and got.usage.completion_tokens == 2
    assert got.choices[0].text == llm.generate(ids[-300:], max_new_tokens=2, temperature=0).text
    turns = []
    for i in range(12):
        turns += [{"role": "user", "content": f"{i} " + "b" * 60}, {"role": "assistant", "content": "ok"}]
    turns.append({"role": "user", "content": "last question"})
    fitted = llm.chat_prompt(turns, max_new_tokens=2, overflow="drop_oldest_turns")
    whole = llm.tokenize(llm.apply_chat_template(turns), add_special_tokens=False)
    assert len(fitted) <= llm.context_length - 2 < llm.context_length < len(whole)
    with ServerThread(llm, ServeConfig()) as s:  # no --max-prompt-tokens below the context
        got = s.client().chat.completions.create(
            model="m",
            messages=turns,
            max_tokens=2,
            temperature=0,
            extra_body={"overflow": "drop_oldest_turns"},
        )
    assert got.usage.prompt_tokens == len(fitted)
    assert (
        got.choices[0].message.content
        == llm.chat(turns, max_new_tokens=2, temperature=0, overflow="drop_oldest_turns").text
    )
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(
            model="m", prompt=ids, max_tokens=2, extra_body={"overflow": "drop_oldest_turns"}
        )
    assert error_of(e.value)["param"] == "overflow"


def test_too_long_prompt_gets_400_with_the_numbers(srv, client, llm):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="m", messages=user("b" * 400), max_tokens=1)
    err = error_of(e.value)
    n = len(llm.tokenize(llm.apply_chat_template(user("b" * 400)), add_special_tokens=False))
    assert err["code"] == "context_length_exceeded" and err["param"] == "messages"
    assert f"{n} tokens" in err["message"] and "at most 300" in err["message"] and "512" in err["message"]
    with pytest.raises(openai.BadRequestError) as e:
        client.completions.create(model="m", prompt=[1, 2, 999], max_tokens=1)
    assert "999" in error_of(e.value)["message"]
    assert (
        client.chat.completions.create(model="m", messages=user("hi"), max_tokens=2).usage.completion_tokens
        == 2
    )


def test_unknown_route_and_wrong_method(srv):
    r = httpx.get(srv.url + "/v1/nothing")
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"
    r = httpx.get(srv.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"})
    assert r.status_code == 405 and r.json()["error"]["code"] == "method_not_allowed"


def test_full_queue_is_503_with_retry_after_then_serves(llm):
    with ServerThread(SlowLLM(llm, 0.02), ServeConfig(max_queue=0)) as s:
        c = s.client()
        stream = c.chat.completions.create(
            model="m", messages=user("hold"), max_tokens=200, temperature=0, stream=True
        )
        next(iter(stream))
        with pytest.raises(openai.InternalServerError) as e:
            c.chat.completions.create(model="m", messages=user("hi"), max_tokens=1)
        assert e.value.status_code == 503 and int(e.value.response.headers["retry-after"]) >= 1
        assert error_of(e.value)["code"] == "queue_full"
        stream.close()
        s.wait_idle()
        assert (
            c.chat.completions.create(model="m", messages=user("hi"), max_tokens=1).usage.completion_tokens
            == 1
        )
        assert s.health()["requests"]["rejected"] == 1


def test_client_leaving_the_queue_and_request_timeout(llm):
    with ServerThread(SlowLLM(llm, 0.02), ServeConfig(request_timeout=0.5)) as s:
        c = s.client()
        stream = c.chat.completions.create(
            model="m", messages=user("hold"), max_tokens=200, temperature=0, stream=True
        )
        next(iter(stream))
        with pytest.raises(openai.APITimeoutError):
            s.client(timeout=0.1).chat.completions.create(model="m", messages=user("hi"), max_tokens=1)
        end = time.monotonic() + DEADLINE
        while s.health()["waiting"]:
            assert time.monotonic() < end
            time.sleep(0.005)
        with pytest.raises(openai.APIError) as e:
            list(stream)
        assert "request-timeout" in str(e.value)
        h = s.wait_idle()
        assert h["requests"]["cancelled"] == 2
        with pytest.raises(openai.InternalServerError) as e:
            c.chat.completions.create(model="m", messages=user("hold"), max_tokens=200, temperature=0)
        assert error_of(e.value)["code"] == "request_timeout" and e.value.response.headers["retry-after"]
        s.wait_idle()
        assert (
            c.chat.completions.create(model="m", messages=user("hi"), max_tokens=2).usage.completion_tokens
            == 2
        )


def test_cli_serves_and_stops(tiny_dir):
    with signalled_child(
        [
            sys.executable,
            "-m",
            "axllm.serve",
            str(tiny_dir),
            "--port",
            "0",
            "--api-key",
            KEY,
            "--kv-slots",
            "1",
            "--max-queue",
            "4",
            "--threads",
            "3",
        ],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in proc.stderr], daemon=True).start()
        log, url = [], None
        end = time.monotonic() + 60
        while url is None:
            line = lines.get(timeout=max(0.1, end - time.monotonic()))
            log.append(line)
            m = re.search(r"serving \S+ \((.*)\) on (http://127\.0\.0\.1:\d+)/v1", line)
            engine, url = m.groups() if m else (None, None)
        assert engine.startswith("host, 3 threads, context "), line
        assert any("loopback interface only" in x for x in log)
        c = openai.OpenAI(base_url=url + "/v1", api_key=KEY, max_retries=0)
        assert c.models.list().data[0].id == tiny_dir.name
        assert (
            c.chat.completions.create(model="m", messages=user("hi"), max_tokens=3).usage.completion_tokens
            == 3
        )
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=DEADLINE) == 0


def test_cli_arguments():
    args = parse_args(["m", "--port", "0", "--request-timeout", "0", "--max-queue", "0"])
    assert (args.host, args.port, args.request_timeout, args.max_queue, args.kv_slots) == (
        "127.0.0.1",
        0,
        None,
        0,
        0,
    )
    assert args.threads is None and parse_args(["m", "--threads", "3"]).threads == 3
    for bad in (
        [],
        ["m", "--demo"],
        ["m", "--port", "-1"],
        ["m", "--max-queue", "x"],
        ["m", "--request-timeout", "nan"],
        ["m", "--threads", "0"],
        ["m", "--threads", "two"],
    ):
        with pytest.raises(SystemExit) as e:
            parse_args(bad)
        assert e.value.code == 2
    assert is_loopback("127.0.0.1") and is_loopback("::1")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.2") and not is_loopback("::")


def test_sse_wire_format(srv):
    r = httpx.post(
        srv.url + "/v1/chat/completions",
        headers={"Authorization": f"Bearer {KEY}"},
        json={"messages": user("hi"), "max_tokens": 3, "stream": True},
    )
    assert r.headers["content-type"].startswith("text/event-stream")
    events = [e for e in r.text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"
    objs = [json.loads(e[6:]) for e in events[:-1]]
    assert objs[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert objs[-1]["choices"][0]["delta"] == {} and objs[-1]["choices"][0]["finish_reason"] == "length"


# The real Qwen2.5-Coder-0.5B-Instruct (bf16 build of the PyPI GGUF).

FRANCE = user("What is the capital of France?")


@pytest.fixture(scope="module")
def qwen(qwen_build):
    llm = axllm.LLM(qwen_build)
    with ServerThread(llm, ServeConfig(kv_slots=2)) as s:
        yield llm, s


@pytest.mark.real_model
def test_real_chat_equals_llm_chat_and_continues_with_cached_tokens(qwen):
    llm, s = qwen
    c = s.client()
    want = llm.chat(FRANCE, max_new_tokens=16, temperature=0)
    assert want.text == "The capital of France is Paris." and want.finish_reason == "stop"
    got = c.chat.completions.create(model="m", messages=FRANCE, max_tokens=16, temperature=0)
    assert got.choices[0].message.content == want.text and got.choices[0].finish_reason == "stop"
    assert got.usage.completion_tokens == want.metrics.generated_tokens
    assert got.usage.prompt_tokens == want.metrics.prompt_tokens
    text, chunks = stream_chat(
        c, FRANCE, max_tokens=16, temperature=0, stream_options={"include_usage": True}
    )
    assert text == want.text and chunks[-2].choices[0].finish_reason == "stop"
    assert chunks[-1].usage.completion_tokens == want.metrics.generated_tokens
    follow = FRANCE + [{"role": "assistant", "content": text}, *user("And of Italy?")]
    again = c.chat.completions.create(model="m", messages=follow, max_tokens=12, temperature=0)
    assert again.usage.prompt_tokens_details.cached_tokens > want.metrics.prompt_tokens
    assert "Rome" in again.choices[0].message.content


@pytest.mark.real_model
def test_real_concurrent_streams_equal_their_sequential_runs(qwen):
    llm, s = qwen
    c = s.client()
    prompts = [user(f"Client {i}: name a color.") for i in range(20)]
    sequential = [stream_chat(c, p, max_tokens=4, temperature=0)[0] for p in prompts]
    with ThreadPoolExecutor(20) as pool:
        got = list(pool.map(lambda p: stream_chat(c, p, max_tokens=4, temperature=0)[0], prompts))
    assert got == sequential


@pytest.mark.real_model
def test_real_closing_a_stream_after_3_chunks_frees_the_engine(qwen):
    llm, s = qwen
    c = s.client()
    messages = user("Write a long essay about the sea.")
    prompt_len = len(llm.tokenize(llm.apply_chat_template(messages), add_special_tokens=False))
    stream = c.chat.completions.create(
        model="m", messages=messages, max_tokens=400, temperature=0, stream=True
    )
    for i, _ in enumerate(stream):
        if i == 3:
            break
    t0 = time.perf_counter()
    stream.close()
    s.wait_idle()
    freed_s = time.perf_counter() - t0
    assert len(llm.cached_tokens) - prompt_len < 40
    t0 = time.perf_counter()
    got = c.chat.completions.create(model="m", messages=FRANCE, max_tokens=1, temperature=0)
    latency_s = time.perf_counter() - t0
    assert freed_s < 2.0 and extra(got)["queue_ms"] < 50
    assert latency_s - extra(got)["ttft_ms"] / 1000 < 1.0
