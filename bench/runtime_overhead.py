"""Runtime overhead per decoded token, with an engine whose steps do no arithmetic
(``backend="host-nocompute"``) at the shapes of a real build (default: the Qwen2.5-0.5B demo
build: 24 layers, H 896, D 128, C 1023, V 151936): everything the runtime does per token (mask,
indices, embedding row, in-place K/V output binding, 25 engine calls, logits read and greedy
sampling) measured in C++ (``Generation.run_steps``) and through the Python streaming iterator
(``LLM.generate(stream=True)``: detokenization, chunk objects).

    python bench/runtime_overhead.py [--model-dir DIR] [--tokens 500]
"""

from __future__ import annotations

import argparse
import statistics
import time

import axllm
from axllm import _core


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir")
    p.add_argument("--tokens", type=int, default=500)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    if args.model_dir:
        model_dir = args.model_dir
    else:
        model_dir = axllm.demo_model()
    llm = axllm.LLM(model_dir, backend="host-nocompute")
    g = llm.geometry
    n = min(args.tokens, g["kv_len"] - 10)
    prompt = [100] * 4

    cpp = []
    for _ in range(args.repeats):
        gen = llm._core.generate(prompt, axllm.GenerationConfig(max_new_tokens=n + 1, temperature=0))
        gen.run_steps(1)
        t0 = time.perf_counter()
        steps = gen.run_steps(n)
        cpp.append((time.perf_counter() - t0) / steps * 1e6)

    py = []
    for _ in range(args.repeats):
        stream = llm.generate(prompt, max_new_tokens=n + 1, temperature=0, stream=True)
        next(stream)
        t0 = time.perf_counter()
        count = 0
        for chunk in stream:
            count += len(chunk.token_ids)
        py.append((time.perf_counter() - t0) / count * 1e6)

    print(
        f"model {model_dir}: {g['n_layers']} layers, H {g['hidden']}, D {g['kv_dim']}, "
        f"C {g['kv_len']}, V {g['vocab']}, io {g['io_dtype']}"
    )
    print(f"C++ runtime per token:        median {statistics.median(cpp):7.1f} us  (min {min(cpp):.1f})")
    print(f"Python streaming per token:   median {statistics.median(py):7.1f} us  (min {min(py):.1f})")
    print(f"targets: <= 50 us (C++), <= 100 us (Python); engine kernel family {_core._testing.host_kernel()}")


if __name__ == "__main__":
    main()
