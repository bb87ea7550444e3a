"""TTFT of turn 5 of a scripted chat with KV prefix reuse versus without (the cache emptied before
the turn), on the Qwen2.5-0.5B demo build (``axllm.demo_model()``: P=128, C=1023, the builder's
default history groups), greedy, in one run. Target: reuse >= 5x faster; also reports the
fraction of turn 5's prompt that was reused.

    python bench/chat_reuse.py [--model-dir DIR] [--repeats 3]
"""

from __future__ import annotations

import argparse
import statistics

import axllm

QUESTIONS = [
    "Write a Python function that checks whether a number is prime.",
    "Now make it faster for large inputs.",
    "Add type hints and a docstring.",
    "Write three unit tests for it with pytest.",
    "Summarize what we did in two sentences.",
]


def conversation(llm: axllm.LLM) -> list[dict]:
    """Runs turns 1-4 and returns the messages for turn 5."""
    messages: list[dict] = [{"role": "system", "content": "You are a concise coding assistant."}]
    for q in QUESTIONS[:4]:
        messages.append({"role": "user", "content": q})
        out = llm.chat(messages, max_new_tokens=96, temperature=0)
        messages.append({"role": "assistant", "content": out.text})
    messages.append({"role": "user", "content": QUESTIONS[4]})
    return messages


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir")
    p.add_argument("--repeats", type=int, default=3)
    args = p.parse_args()
    if args.model_dir:
        model_dir = args.model_dir
    else:
        model_dir = axllm.demo_model()
    llm = axllm.LLM(model_dir)
    messages = conversation(llm)
    with_reuse, without, fractions = [], [], []
    for _ in range(args.repeats):
        llm.reset()
        conversation(llm)
        out = llm.chat(messages, max_new_tokens=1, temperature=0)
        with_reuse.append(out.metrics.ttft_ms)
        fractions.append(out.metrics.cached_tokens / out.metrics.prompt_tokens)
        prompt_tokens = out.metrics.prompt_tokens
        llm.reset()
        out = llm.chat(messages, max_new_tokens=1, temperature=0)
        without.append(out.metrics.ttft_ms)
    a, b = statistics.median(with_reuse), statistics.median(without)
    print(f"model {model_dir}; turn 5 prompt: {prompt_tokens} tokens")
    print(
        f"TTFT turn 5 with reuse:    {a:8.1f} ms (median of {args.repeats}; "
        f"reused {statistics.median(fractions):.1%})"
    )
    print(f"TTFT turn 5 without reuse: {b:8.1f} ms")
    print(f"ratio: {b / a:.1f}x (target >= 5x)")


if __name__ == "__main__":
    main()
