"""Every group of a built layer, and the post model, against transformers' forward pass on tiny
random Qwen2 and Llama models (GQA ratios 1, 2 and 7; history groups; llama3 RoPE scaling)."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
import torch
import transformers  # noqa: F401
from helpers.contract import blocked, decode_feed, prefill_feed  # noqa: E402
from helpers.tiny_models import TinyConfig, layer_reference, make_model, post_reference, save_model  # noqa: E402

import axllm  # noqa: E402
from axllm.build import BuildOptions, build  # noqa: E402

P, C, HISTORY = 8, 40, (8, 16)

CONFIGS = [
    TinyConfig("qwen2", num_heads=4, num_kv_heads=4, seed=1),
    TinyConfig("llama", num_heads=4, num_kv_heads=2, tie=True, seed=2),
    TinyConfig("qwen2", hidden_size=112, num_heads=7, num_kv_heads=1, intermediate_size=160, seed=3),
    TinyConfig(
        "qwen2", hidden_size=72, num_heads=3, num_kv_heads=3, head_dim=24, intermediate_size=100, seed=5
    ),
    TinyConfig(
        "llama",
        hidden_size=64,
        num_heads=2,
        num_kv_heads=1,
        head_dim=32,
        seed=4,
        attention_bias=True,
        rope_scaling={
            "rope_type": "llama3",
            "factor": 8.0,
            "low_freq_factor": 1.0,
            "high_freq_factor": 4.0,
            "original_max_position_embeddings": 16,
        },
    ),
]
MODES = {
    "fp32": ("fp32", "fp32", np.float32),
    "bf16": ("bf16", "bf16", ml_dtypes.bfloat16),
    "fp16": ("fp16", "fp32", np.float16),
}


def _round(a: np.ndarray, dtype) -> np.ndarray:
    return a.astype(dtype).astype(np.float32)


def _check(mode: str, got: np.ndarray, want: np.ndarray, what: str) -> None:
    got = got.astype(np.float32).reshape(want.shape)
    if mode == "fp32":
        diff = float(np.max(np.abs(got - want)))
        assert diff <= 1e-4, f"{what}: max abs diff {diff:.3g} > 1e-4"
    else:
        cos = float(np.dot(got.ravel(), want.ravel()) / (np.linalg.norm(got) * np.linalg.norm(want) + 1e-30))
        assert cos >= 0.999, f"{what}: cosine {cos:.6f} < 0.999"


@pytest.fixture(scope="module", params=CONFIGS, ids=lambda c: c.id)
def tiny(request, tmp_path_factory):
    cfg = request.param
    model = make_model(cfg)
    ckpt = save_model(model, tmp_path_factory.mktemp(cfg.id) / "hf")
    return cfg, model, ckpt


@pytest.fixture(scope="module", params=list(MODES), ids=str)
def built(request, tiny, tmp_path_factory):
    cfg, model, ckpt = tiny
    t, w, dtype = MODES[request.param]
    out = build(
        ckpt,
        tmp_path_factory.mktemp(f"{cfg.id}-{request.param}"),
        BuildOptions(
            prefill_len=P, kv_cache_len=C, last_kv_cache_len=HISTORY, hidden_state_type=t, weight_type=w
        ),
    )
    return request.param, dtype, cfg, model, out


def _session(out, cfg, layer):
    name = f"{cfg.model_type}_p{P}_l{layer}_together.hostmodel"
    return axllm.InferenceSession(out / name)


def _reference(model, cfg, total, dtype, seed):
    rng = np.random.default_rng(seed)
    embeds = _round(rng.standard_normal((total, cfg.hidden_size)).astype(np.float32), dtype)
    return layer_reference(model, embeds)


def test_group_layout(built):
    mode, dtype, cfg, model, out = built
    sess = _session(out, cfg, 0)
    assert sess.num_groups == 2 + len(HISTORY)
    d = cfg.num_kv_heads * cfg.head_dim
    shapes = {i.name: i.shape for i in sess.get_inputs(0)}
    assert shapes == {
        "input": (1, 1, cfg.hidden_size),
        "indices": (1, 1),
        "mask": (1, 1, C + 1),
        "K_cache": (1, C, d),
        "V_cache": (1, C, d),
    }
    assert [(o.name, o.shape) for o in sess.get_outputs(1)] == [
        ("K_cache_out", (1, P, d)),
        ("V_cache_out", (1, P, d)),
        ("output", (1, P, cfg.hidden_size)),
    ]
    assert {i.name: i.shape for i in sess.get_inputs(1)}["K_cache"] == (1, 1, d)
    for g, hist in enumerate(HISTORY, start=2):
        shapes = {i.name: i.shape for i in sess.get_inputs(g)}
        assert shapes["mask"] == (1, P, hist + P)
        assert shapes["K_cache"] == (1, hist, d)
    assert {i.name: i.dtype for i in sess.get_inputs(0)}["indices"] == np.uint32
    assert sess.get_outputs(0)[2].dtype == np.dtype(dtype)


@pytest.mark.parametrize("pos", [0, 5, 23, C - 1])
def test_decode_group(built, pos):
    mode, dtype, cfg, model, out = built
    ref = _reference(model, cfg, pos + 1, dtype, seed=pos)
    rng = np.random.default_rng(100 + pos)
    for layer in range(cfg.num_layers):
        sess = _session(out, cfg, layer)
        feed = decode_feed(
            sess,
            _round(ref.inputs[layer][pos], dtype),
            _round(ref.keys[layer], dtype),
            _round(ref.values[layer], dtype),
            pos,
            dtype,
            rng,
        )
        k_out, v_out, y = sess.run(None, feed, shape_group=0)
        what = f"{cfg.id} {mode} layer {layer} decode pos {pos}"
        _check(mode, k_out, ref.keys[layer][pos], what + " K_cache_out")
        _check(mode, v_out, ref.values[layer][pos], what + " V_cache_out")
        _check(mode, y, ref.outputs[layer][pos], what + " output")


@pytest.mark.parametrize(
    "group,history,n", [(1, 0, P), (1, 0, 3), (2, 8, 8), (2, 5, 6), (3, 16, 8), (3, 9, 2)]
)
def test_prefill_groups(built, group, history, n):
    mode, dtype, cfg, model, out = built
    ref = _reference(model, cfg, history + n, dtype, seed=group * 1000 + history * 10 + n)
    rng = np.random.default_rng(7)
    for layer in range(cfg.num_layers):
        sess = _session(out, cfg, layer)
        rows = _round(ref.inputs[layer][history : history + n], dtype)
        feed = prefill_feed(
            sess,
            group,
            rows,
            _round(ref.keys[layer], dtype),
            _round(ref.values[layer], dtype),
            history,
            dtype,
            rng,
        )
        k_out, v_out, y = sess.run(["K_cache_out", "V_cache_out", "output"], feed, shape_group=group)
        what = f"{cfg.id} {mode} layer {layer} group {group} history {history} n {n}"
        _check(mode, k_out[0, :n], ref.keys[layer][history : history + n], what + " K_cache_out")
        _check(mode, v_out[0, :n], ref.values[layer][history : history + n], what + " V_cache_out")
        _check(mode, y[0, :n], ref.outputs[layer][history : history + n], what + " output")
        assert np.all(y[0, n:].astype(np.float32) == 0), "fully masked padding rows must be zero"


def test_post_model(built):
    mode, dtype, cfg, model, out = built
    sess = axllm.InferenceSession(out / f"{cfg.model_type}_post.hostmodel")
    assert sess.num_groups == 1
    assert sess.get_outputs(0)[0].shape == (1, 1, cfg.vocab_size)
    rng = np.random.default_rng(3)
    for trial in range(3):
        x = _round(rng.standard_normal((1, cfg.hidden_size)).astype(np.float32) * 2, dtype)
        (logits,) = sess.run(None, {"input": x.reshape(1, 1, -1).astype(dtype)})
        _check(mode, logits, post_reference(model, x)[0], f"{cfg.id} {mode} post trial {trial}")


def test_prefill_then_decode_chain_matches_full_forward(built):
    """Whole-model check: prefill 5 tokens through group 1, append their K/V rows to a decode
    cache, decode 3 more through group 0 and compare the post logits with transformers."""
    mode, dtype, cfg, model, out = built
    rng = np.random.default_rng(11)
    total, n_prompt = 8, 5
    embeds = _round(rng.standard_normal((total, cfg.hidden_size)).astype(np.float32), dtype)
    with torch.no_grad():
        want = model(inputs_embeds=torch.from_numpy(embeds)[None]).logits[0].numpy()
    layers = [_session(out, cfg, i) for i in range(cfg.num_layers)]
    post = axllm.InferenceSession(out / f"{cfg.model_type}_post.hostmodel")
    d = cfg.num_kv_heads * cfg.head_dim
    kc = [np.zeros((1, C, d), dtype) for _ in layers]
    vc = [np.zeros((1, C, d), dtype) for _ in layers]
    x = np.zeros((1, P, cfg.hidden_size), dtype)
    x[0, :n_prompt] = embeds[:n_prompt].astype(dtype)
    mask = np.full((1, P, P), blocked(dtype), np.float32)
    for r in range(n_prompt):
        mask[0, r, : r + 1] = 0
    idx = np.zeros((1, P), np.uint32)
    idx[0, :n_prompt] = np.arange(n_prompt)
    for i, sess in enumerate(layers):
        k, v, x = sess.run(
            None,
            {
                "input": x,
                "indices": idx,
                "mask": mask.astype(dtype),
                "K_cache": np.zeros((1, 1, d), dtype),
                "V_cache": np.zeros((1, 1, d), dtype),
            },
            shape_group=1,
        )
        kc[i][0, :n_prompt] = k[0, :n_prompt]
        vc[i][0, :n_prompt] = v[0, :n_prompt]
    (logits,) = post.run(None, {"input": x[:, n_prompt - 1 : n_prompt]})
    _check(mode, logits, want[n_prompt - 1], f"{cfg.id} {mode} chained prefill logits")
    for pos in range(n_prompt, total):
        h = embeds[pos].reshape(1, 1, -1).astype(dtype)
        dmask = np.full((1, 1, C + 1), blocked(dtype), np.float32)
        dmask[0, 0, :pos] = 0
        dmask[0, 0, C] = 0
        for i, sess in enumerate(layers):
            k, v, h = sess.run(
                None,
                {
                    "input": h,
                    "indices": np.array([[pos]], np.uint32),
                    "mask": dmask.astype(dtype),
                    "K_cache": kc[i],
                    "V_cache": vc[i],
                },
                shape_group=0,
            )
            kc[i][0, pos] = k[0, 0]
            vc[i][0, pos] = v[0, 0]
        (logits,) = post.run(None, {"input": h})
        _check(mode, logits, want[pos], f"{cfg.id} {mode} chained decode pos {pos} logits")
