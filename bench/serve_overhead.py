"""What HTTP streaming through ``python -m axllm.serve`` adds to TTFT and decode time, against
direct ``LLM.chat(stream=True)`` on the same model, in the same run. Targets: HTTP adds <= 5 ms
to TTFT and <= 3 % to decode time.

For each model the server runs as a subprocess on a free loopback port (as deployed); the client
streams with httpx and parses every server-sent event. Direct and HTTP runs alternate over the
same greedy prompts, each prompt different from the start of the user message so that only the
chat template's prefix is reused from the KV cache (the same reuse on both sides). TTFT runs
from sending the request (calling ``LLM.chat``) to the first content delta (first non-empty
chunk); decode tok/s counts the generated tokens after the first over the time from the first
content to the last. Medians over ``--repeats``, with a short pause between runs.

Models: ``tiny`` (a random fp32 Qwen2-shaped model, 4 layers, hidden 256, built on the fly; needs
torch and transformers) and ``qwen`` (the Qwen2.5-Coder-0.5B demo build, bf16, built once into
the cache), or any ``--model-dir``.

    python bench/serve_overhead.py [--models tiny,qwen] [--model-dir DIR] [--repeats 5]
                                   [--tokens-tiny 200] [--tokens-qwen 64] [--engine-threads N]

On a host without an NPU the host engine's threads keep every core busy while it decodes (one
thread per core), so the server's event loop and the client wait for time slices;
``--engine-threads 1`` on a 2-core host leaves them a core, as a board's NPU would.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
from tiny_model import tiny_model

import axllm

PAUSE_S = 0.3  # between runs


class Server:
    """``python -m axllm.serve MODEL --port 0`` as a subprocess; a context manager."""

    def __init__(self, model_dir: Path):
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "axllm.serve", str(model_dir), "--port", "0", "--log-level", "warning"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        lines: queue.Queue = queue.Queue()
        threading.Thread(target=lambda: [lines.put(x) for x in self.proc.stderr], daemon=True).start()
        self.url = ""
        end = time.monotonic() + 300
        log = []
        while not self.url:
            try:
                line = lines.get(timeout=1)
            except queue.Empty:
                if self.proc.poll() is not None or time.monotonic() > end:
                    self.__exit__()
                    raise RuntimeError("the server did not start:\n" + "".join(log)) from None
                continue
            log.append(line)
            m = re.search(r"serving \S+ .* on (http://\S+)/v1", line)
            self.url = m.group(1) if m else ""

    def __enter__(self) -> Server:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def direct(llm: axllm.LLM, messages: list[dict], tokens: int) -> tuple[float, float, int, float]:
    """(TTFT ms, decode tok/s, generated tokens, the engine's TTFT ms) of ``LLM.chat(stream=True)``."""
    t0 = time.perf_counter()
    first = last = None
    generated, engine_ttft = 0, 0.0
    for chunk in llm.chat(messages, max_new_tokens=tokens, temperature=0, stream=True):
        now = time.perf_counter()
        if chunk.text:
            first = first or now
            last = now
        if chunk.metrics is not None:
            generated, engine_ttft = chunk.metrics.generated_tokens, chunk.metrics.ttft_ms
    assert first is not None and last is not None
    return (first - t0) * 1000, _rate(generated - 1, last - first), generated, engine_ttft


def _rate(tokens: int, seconds: float) -> float:
    return tokens / seconds if seconds > 0 else float("nan")


def over_http(
    client: httpx.Client, url: str, messages: list[dict], tokens: int
) -> tuple[float, float, int, float]:
    """(TTFT ms, decode tok/s, generated tokens, the engine's TTFT ms) of a streamed chat completion
    over HTTP."""
    body = {
        "messages": messages,
        "max_tokens": tokens,
        "temperature": 0,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    t0 = time.perf_counter()
    first = last = None
    generated, engine_ttft = 0, 0.0
    with client.stream("POST", url + "/v1/chat/completions", json=body) as r:
        r.raise_for_status()
        for line in r.iter_lines():
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            now = time.perf_counter()
            event = json.loads(line[6:])
            if event.get("usage"):
                generated = event["usage"]["completion_tokens"]
            if event.get("axllm"):
                engine_ttft = event["axllm"]["ttft_ms"]
            if event["choices"] and event["choices"][0]["delta"].get("content"):
                first = first or now
                last = now
    assert first is not None and last is not None
    return (first - t0) * 1000, _rate(generated - 1, last - first), generated, engine_ttft


def bench(name: str, model_dir: Path, tokens: int, repeats: int) -> None:
    llm = axllm.LLM(model_dir)
    prompts = [
        [{"role": "user", "content": f"Run {i}: write a short poem about the number {i}."}]
        for i in range(repeats + 1)
    ]
    rows: dict[str, list[tuple[float, float, int, float]]] = {"direct": [], "http": []}
    with Server(model_dir) as server, httpx.Client(timeout=600) as client:
        direct(llm, prompts[0], 4)  # warm-up: page in the weights on both sides
        over_http(client, server.url, prompts[0], 4)
        for messages in prompts[1:]:
            time.sleep(PAUSE_S)
            rows["direct"].append(direct(llm, messages, tokens))
            time.sleep(PAUSE_S)
            rows["http"].append(over_http(client, server.url, messages, tokens))
    ttft = {k: statistics.median(r[0] for r in v) for k, v in rows.items()}
    engine = {k: statistics.median(r[3] for r in v) for k, v in rows.items()}
    outside = {k: statistics.median(r[0] - r[3] for r in v) for k, v in rows.items()}
    tps = {k: statistics.median(r[1] for r in v) for k, v in rows.items()}
    n = statistics.median(r[2] for r in rows["http"])
    added_ttft = ttft["http"] - ttft["direct"]
    added_decode = (tps["direct"] / tps["http"] - 1) * 100
    print(f"{name}: {model_dir} ({llm.backend}), {tokens} tokens, median of {repeats}")
    print(
        f"  TTFT    direct {ttft['direct']:9.2f} ms   HTTP {ttft['http']:9.2f} ms   "
        f"added {added_ttft:+7.2f} ms  (target <= 5 ms; the engine's own TTFT: direct "
        f"{engine['direct']:.2f} ms, in the server {engine['http']:.2f} ms)"
    )
    print(
        f"  TTFT outside the engine: direct {outside['direct']:.2f} ms, HTTP {outside['http']:.2f} ms, "
        f"added {outside['http'] - outside['direct']:+.2f} ms"
    )
    per_token_us = (1 / tps["http"] - 1 / tps["direct"]) * 1e6
    print(
        f"  decode  direct {tps['direct']:9.1f} tok/s HTTP {tps['http']:9.1f} tok/s "
        f"added {added_decode:+6.2f} % decode time (target <= 3 %; {per_token_us:+.0f} us/token), "
        f"{n:.0f} tokens generated"
    )
    sys.stdout.flush()


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default="tiny,qwen", help="comma-separated: tiny, qwen")
    p.add_argument("--model-dir", help="also (or only, with --models '') bench this model directory")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--tokens-tiny", type=int, default=200)
    p.add_argument("--tokens-qwen", type=int, default=64)
    p.add_argument(
        "--engine-threads",
        type=int,
        help="host engine threads for both sides (AXLLM_NUM_THREADS; default: one per core). "
        "With 1 on a 2-core host, the HTTP path gets a core of its own, as it has on a "
        "board whose NPU does the arithmetic",
    )
    args = p.parse_args()
    if args.engine_threads:
        os.environ["AXLLM_NUM_THREADS"] = str(args.engine_threads)
    print(f"engine threads: {os.environ.get('AXLLM_NUM_THREADS', 'one per core')} ({os.cpu_count()} cores)")
    names = [m for m in args.models.split(",") if m]
    with tempfile.TemporaryDirectory() as tmp:
        if "tiny" in names:
            bench("tiny", tiny_model(Path(tmp)), args.tokens_tiny, args.repeats)
        if "qwen" in names:
            bench("qwen", axllm.demo_model(), args.tokens_qwen, args.repeats)
        if args.model_dir:
            bench(Path(args.model_dir).name, Path(args.model_dir), args.tokens_qwen, args.repeats)


if __name__ == "__main__":
    main()
