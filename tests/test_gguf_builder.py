"""The builder fed a GGUF (written here with gguf.GGUFWriter, F32 and Q8_0; Llama q/k permuted
the way llama.cpp stores them) produces the same tensors as fed the equivalent safetensors."""

from __future__ import annotations

import json

import gguf
import numpy as np
import pytest
import torch
import transformers  # noqa: F401
from helpers.gguf_files import save_gguf  # noqa: E402
from helpers.tiny_models import TinyConfig, make_model, save_model  # noqa: E402

from axllm.build import BuildOptions, build  # noqa: E402
from axllm.build.host_model_writer import read_host_model  # noqa: E402

LAYER = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
GLOBAL = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def permute(w: np.ndarray, n_head: int) -> np.ndarray:
    """llama.cpp's storage order for Llama q/k rows (interleaved RoPE halves)."""
    out = w.shape[0]
    tail = w.shape[1:]
    return w.reshape(n_head, 2, out // n_head // 2, *tail).swapaxes(1, 2).reshape(out, *tail)


def gguf_name(hf: str) -> str:
    if hf in GLOBAL:
        return GLOBAL[hf]
    _, _, i, rest = hf.split(".", 3)
    return f"blk.{i}.{LAYER[rest]}"


def write_gguf(path, cfg: TinyConfig, state: dict[str, np.ndarray], quant: str) -> dict[str, np.ndarray]:
    """Writes ``state`` as GGUF; returns the values a reader recovers (after Q8_0 round trip)."""
    w = gguf.GGUFWriter(str(path), arch=cfg.model_type)
    w.add_block_count(cfg.num_layers)
    w.add_context_length(4096)
    w.add_embedding_length(cfg.hidden_size)
    w.add_feed_forward_length(cfg.intermediate_size)
    w.add_head_count(cfg.num_heads)
    w.add_head_count_kv(cfg.num_kv_heads)
    w.add_key_length(cfg.head_dim)
    w.add_value_length(cfg.head_dim)
    w.add_rope_freq_base(cfg.rope_theta)
    w.add_layer_norm_rms_eps(1e-6)
    recovered = {}
    for name, value in state.items():
        a = value.astype(np.float32)
        stored = a
        if cfg.model_type == "llama" and "q_proj" in name:
            stored = permute(a, cfg.num_heads)
        elif cfg.model_type == "llama" and "k_proj" in name:
            stored = permute(a, cfg.num_kv_heads)
        if quant == "Q8_0" and a.ndim == 2:
            q = gguf.quants.quantize(stored, gguf.GGMLQuantizationType.Q8_0)
            w.add_tensor(gguf_name(name), q, raw_shape=q.shape, raw_dtype=gguf.GGMLQuantizationType.Q8_0)
            back = gguf.quants.dequantize(q, gguf.GGMLQuantizationType.Q8_0)
            recovered[name] = a if back is None else _unpermute_like(cfg, name, back)
        else:
            w.add_tensor(gguf_name(name), stored)
            recovered[name] = a
    save_gguf(w)
    return recovered


def _unpermute_like(cfg: TinyConfig, name: str, a: np.ndarray) -> np.ndarray:
    """Inverse of ``permute`` written independently (index arithmetic, not reshapes)."""
    if cfg.model_type != "llama" or not ("q_proj" in name or "k_proj" in name):
        return a
    n_head = cfg.num_heads if "q_proj" in name else cfg.num_kv_heads
    hd = a.shape[0] // n_head
    out = np.empty_like(a)
    for h in range(n_head):
        for j in range(hd // 2):
            out[h * hd + j] = a[h * hd + 2 * j]
            out[h * hd + hd // 2 + j] = a[h * hd + 2 * j + 1]
    return out


CASES = [
    (TinyConfig("qwen2", num_heads=4, num_kv_heads=2, seed=21), "F32"),
    (TinyConfig("qwen2", num_heads=4, num_kv_heads=2, seed=22), "Q8_0"),
    (TinyConfig("llama", num_heads=4, num_kv_heads=2, seed=23), "F32"),
    (TinyConfig("llama", num_heads=4, num_kv_heads=1, tie=True, seed=24), "Q8_0"),
]


@pytest.mark.parametrize("cfg,quant", CASES, ids=[f"{c.id}-{q}" for c, q in CASES])
def test_gguf_equals_safetensors(tmp_path, cfg, quant):
    model = make_model(cfg)
    state = {k: v.numpy() for k, v in model.state_dict().items()}
    if cfg.tie:
        state.pop("lm_head.weight", None)
    recovered = write_gguf(tmp_path / "m.gguf", cfg, state, quant)
    with torch.no_grad():
        sd = model.state_dict()
        for name, value in recovered.items():
            sd[name].copy_(torch.from_numpy(value))
    save_model(model, tmp_path / "hf")
    opts = BuildOptions(
        prefill_len=8, kv_cache_len=32, last_kv_cache_len=[16], hidden_state_type="bf16", weight_type="fp32"
    )
    a = build(tmp_path / "m.gguf", tmp_path / "from_gguf", opts)
    b = build(tmp_path / "hf", tmp_path / "from_hf", opts)
    files = sorted(p.name for p in b.glob("*.hostmodel"))
    assert files == sorted(p.name for p in a.glob("*.hostmodel"))
    assert len(files) == cfg.num_layers + 1
    for name in files:
        ha, ta = read_host_model(a / name)
        hb, tb = read_host_model(b / name)
        assert ta.keys() == tb.keys(), name
        for key in ta:
            assert ta[key].dtype == tb[key].dtype and ta[key].shape == tb[key].shape, (name, key)
            np.testing.assert_array_equal(ta[key], tb[key], err_msg=f"{name}:{key}")
        eps_a, eps_b = float(ha.pop("rms_norm_eps")[0]), float(hb.pop("rms_norm_eps")[0])
        assert eps_a == pytest.approx(eps_b, rel=1e-6)
        assert ha == hb, name
    emb = "model.embed_tokens.weight.bfloat16.bin"
    assert (a / emb).read_bytes() == (b / emb).read_bytes()
    ca = json.loads((a / "config.json").read_text())["axllm_build"]
    cb = json.loads((b / "config.json").read_text())["axllm_build"]
    ca.pop("source"), cb.pop("source")
    assert ca == cb


def test_q8_0_actually_quantizes(tmp_path):
    """Guards the test above: the Q8_0 round trip must change the weights, or it proves nothing."""
    cfg = CASES[1][0]
    state = {k: v.numpy() for k, v in make_model(cfg).state_dict().items()}
    recovered = write_gguf(tmp_path / "m.gguf", cfg, state, "Q8_0")
    name = "model.layers.0.mlp.up_proj.weight"
    assert not np.array_equal(recovered[name], state[name])
    assert np.max(np.abs(recovered[name] - state[name])) < 0.01
