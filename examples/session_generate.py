"""Greedy chat generation written directly against ``axllm.InferenceSession``, the way
pyaxengine users drive pulsar2 layer models from Python today: one prefill chunk through group 1,
then one decode step per token through group 0 of every layer, the post model, argmax.

With no ``--model-dir`` it runs the demo build, ``axllm.demo_model()`` (Qwen2.5-Coder-0.5B-Instruct,
a GGUF shipped on PyPI, built for the host engine once and shared with ``python -m axllm.chat
--demo``), and answers a question:

    python examples/session_generate.py "What is the capital of France?"
    python examples/session_generate.py --model-dir DIR --max-new-tokens 64 "Hi"
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import Tokenizer
from tokenizers.decoders import DecodeStream

import axllm


def render_prompt(model_dir: Path, question: str) -> str:
    config = json.loads((model_dir / "tokenizer_config.json").read_text())
    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    template = env.from_string(config["chat_template"])
    return template.render(
        messages=[{"role": "user", "content": question}],
        add_generation_prompt=True,
        bos_token=config.get("bos_token") or "",
        eos_token=config.get("eos_token") or "",
    )


class Runner:
    def __init__(self, model_dir: Path):
        b = json.loads((model_dir / "config.json").read_text())["axllm_build"]
        self.layers = [
            axllm.InferenceSession(model_dir / (b["template_filename_axmodel"] % i))
            for i in range(b["axmodel_num"])
        ]
        self.post = axllm.InferenceSession(model_dir / b["filename_post_axmodel"])
        g0 = {i.name: i for i in self.layers[0].get_inputs(0)}
        g1 = {i.name: i for i in self.layers[0].get_inputs(1)}
        self.dtype = g0["input"].dtype
        self.c = g0["K_cache"].shape[1]
        self.p = g1["input"].shape[1]
        self.hidden = b["tokens_embed_size"]
        self.embed = np.memmap(model_dir / b["filename_tokens_embed"], dtype=np.uint16, mode="r").reshape(
            b["tokens_embed_num"], self.hidden
        )
        self.k = [np.zeros(g0["K_cache"].shape, self.dtype) for _ in self.layers]
        self.v = [np.zeros(g0["V_cache"].shape, self.dtype) for _ in self.layers]
        self.blocked = -65536.0

    def embed_rows(self, ids) -> np.ndarray:
        import ml_dtypes

        x = np.asarray(self.embed[np.asarray(ids)]).view(ml_dtypes.bfloat16).astype(np.float32)
        return x.astype(self.dtype)

    def logits(self, hidden_row: np.ndarray) -> np.ndarray:
        (out,) = self.post.run(None, {"input": hidden_row.reshape(1, 1, -1)})
        return out.astype(np.float32).ravel()

    def prefill(self, ids) -> np.ndarray:
        n = len(ids)
        x = np.zeros((1, self.p, self.hidden), self.dtype)
        x[0, :n] = self.embed_rows(ids)
        mask = np.full((1, self.p, self.p), self.blocked, np.float32)
        for r in range(n):
            mask[0, r, : r + 1] = 0
        idx = np.zeros((1, self.p), np.uint32)
        idx[0, :n] = np.arange(n)
        d = self.k[0].shape[2]
        for i, sess in enumerate(self.layers):
            k, v, x = sess.run(
                None,
                {
                    "input": x,
                    "indices": idx,
                    "mask": mask.astype(self.dtype),
                    "K_cache": np.zeros((1, 1, d), self.dtype),
                    "V_cache": np.zeros((1, 1, d), self.dtype),
                },
                shape_group=1,
            )
            self.k[i][0, :n] = k[0, :n]
            self.v[i][0, :n] = v[0, :n]
        return self.logits(x[0, n - 1])

    def decode(self, token: int, pos: int) -> np.ndarray:
        mask = np.full((1, 1, self.c + 1), self.blocked, np.float32)
        mask[0, 0, :pos] = 0
        mask[0, 0, self.c] = 0
        mask = mask.astype(self.dtype)
        h = self.embed_rows([token]).reshape(1, 1, -1)
        idx = np.array([[pos]], np.uint32)
        for i, sess in enumerate(self.layers):
            k, v, h = sess.run(
                None,
                {"input": h, "indices": idx, "mask": mask, "K_cache": self.k[i], "V_cache": self.v[i]},
                shape_group=0,
            )
            self.k[i][0, pos] = k[0, 0]
            self.v[i][0, pos] = v[0, 0]
        return self.logits(h)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("question", nargs="?", default="What is the capital of France?")
    ap.add_argument("--model-dir", type=Path)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    args = ap.parse_args()
    model_dir = args.model_dir or axllm.demo_model()
    tok = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    gen = json.loads((model_dir / "generation_config.json").read_text())
    eos = gen["eos_token_id"]
    eos = set(eos if isinstance(eos, list) else [eos])
    ids = tok.encode(render_prompt(model_dir, args.question), add_special_tokens=False).ids
    runner = Runner(model_dir)
    if len(ids) > runner.p:
        print(f"prompt has {len(ids)} tokens; this example prefills at most {runner.p}", file=sys.stderr)
        return 2
    t0 = time.perf_counter()
    token = int(np.argmax(runner.prefill(ids)))
    ttft = time.perf_counter() - t0
    stream = DecodeStream(skip_special_tokens=True)
    generated = 0
    t1 = time.perf_counter()
    pos = len(ids)
    while token not in eos and generated < args.max_new_tokens and pos < runner.c:
        piece = stream.step(tok, token)
        if piece:
            print(piece, end="", flush=True)
        generated += 1
        token = int(np.argmax(runner.decode(token, pos)))
        pos += 1
    elapsed = time.perf_counter() - t1
    print(
        f"\n[{len(ids)} prompt tokens, TTFT {ttft * 1e3:.0f} ms, {generated} tokens at "
        f"{generated / max(elapsed, 1e-9):.1f} tok/s, engine: {axllm._core._testing.host_kernel()} x "
        f"{axllm._core._testing.host_threads()} threads]",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
