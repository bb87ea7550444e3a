"""``python -m axllm.build``: flags mirror ``pulsar2 llm_build``."""

from __future__ import annotations

import argparse
import sys
import time

from axllm.build.writer import HIDDEN_STATE_TYPES, WEIGHT_TYPES, BuildOptions, build
from axllm.errors import AxllmError


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m axllm.build",
        description="Build a pulsar2-shaped model directory for axllm's host engine from a "
        "Hugging Face checkpoint directory or a GGUF file.",
    )
    p.add_argument("--input_path", required=True, help="HF checkpoint directory or .gguf file")
    p.add_argument("--output_path", required=True, help="directory to write")
    p.add_argument("--prefill_len", type=int, default=128, help="tokens per prefill chunk (P)")
    p.add_argument("--kv_cache_len", type=int, default=1023, help="KV cache rows (C)")
    p.add_argument(
        "--last_kv_cache_len",
        type=int,
        action="append",
        default=None,
        metavar="H",
        help="history length of a prefill-with-history group (repeatable). Default: every "
        "multiple of --prefill_len below --kv_cache_len (128 256 ... 896 for P=128, C=1023), so "
        "any prompt up to the context prefills in P-token chunks; the groups share the layer "
        "weights (no extra file size). Given flags replace the default; 0 alone builds no history "
        "groups (prompts past P then go through decode steps, one token per run)",
    )
    p.add_argument("-t", "--hidden_state_type", choices=HIDDEN_STATE_TYPES, default="bf16")
    p.add_argument("-w", "--weight_type", choices=WEIGHT_TYPES, default="bf16")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress output")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    history = args.last_kv_cache_len
    if history == [0]:
        history = []
    opts = BuildOptions(
        prefill_len=args.prefill_len,
        kv_cache_len=args.kv_cache_len,
        last_kv_cache_len=history,
        hidden_state_type=args.hidden_state_type,
        weight_type=args.weight_type,
    )
    start = time.perf_counter()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"\r[{time.perf_counter() - start:6.1f}s] {msg}   ", end="", file=sys.stderr, flush=True)

    try:
        out = build(args.input_path, args.output_path, opts, progress)
    except (AxllmError, ValueError, OSError) as e:
        print(f"\nerror: {e}", file=sys.stderr)
        return 1
    if not args.quiet:
        print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
