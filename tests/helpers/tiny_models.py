"""Tiny random Hugging Face models made in the test, and transformers-computed references for
one decoder layer's group run (the references are transformers' own forward pass)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch


@dataclass(frozen=True)
class TinyConfig:
    model_type: str
    hidden_size: int = 64
    num_heads: int = 4
    num_kv_heads: int = 4
    head_dim: int = 16
    intermediate_size: int = 96
    num_layers: int = 2
    vocab_size: int = 320
    tie: bool = False
    rope_theta: float = 10000.0
    rope_scaling: dict | None = None
    attention_bias: bool = False
    seed: int = 0

    @property
    def id(self) -> str:
        return (
            f"{self.model_type}-h{self.hidden_size}-nh{self.num_heads}-kv{self.num_kv_heads}"
            f"{'-tied' if self.tie else ''}{'-llama3rope' if self.rope_scaling else ''}"
        )


def make_model(cfg: TinyConfig) -> torch.nn.Module:
    """A random fp32 model with non-trivial biases and norm weights (eager attention)."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common = dict(
        hidden_size=cfg.hidden_size,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        vocab_size=cfg.vocab_size,
        tie_word_embeddings=cfg.tie,
        rope_theta=cfg.rope_theta,
        max_position_embeddings=4096,
        rms_norm_eps=1e-6,
    )
    if cfg.rope_scaling:
        common["rope_scaling"] = dict(cfg.rope_scaling)
    torch.manual_seed(cfg.seed)
    if cfg.model_type == "qwen2":
        conf = Qwen2Config(**common)
        cls = Qwen2ForCausalLM
    else:
        conf = LlamaConfig(**common, attention_bias=cfg.attention_bias)
        cls = LlamaForCausalLM
    conf._attn_implementation = "eager"
    model = cls(conf).eval()
    gen = torch.Generator().manual_seed(cfg.seed + 1)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("bias"):
                p.copy_(torch.randn(p.shape, generator=gen) * 0.5)
            elif "norm" in name:
                p.copy_(1.0 + torch.randn(p.shape, generator=gen) * 0.2)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.08)
    return model


def save_model(model: torch.nn.Module, path: Path, dtype: torch.dtype = torch.float32) -> Path:
    model.to(dtype).save_pretrained(path, safe_serialization=True)
    model.to(torch.float32)
    return path


def _layer_kv(cache, layer: int) -> tuple[torch.Tensor, torch.Tensor]:
    if hasattr(cache, "layers"):
        return cache.layers[layer].keys, cache.layers[layer].values
    return cache.key_cache[layer], cache.value_cache[layer]


@dataclass
class LayerReference:
    """transformers' view of a sequence of T positions: per layer, the layer input and output
    hidden states [T, H] and the post-RoPE K and V rows [T, kv_heads * head_dim]."""

    inputs: list[np.ndarray]
    outputs: list[np.ndarray]
    keys: list[np.ndarray]
    values: list[np.ndarray]


def layer_reference(model: torch.nn.Module, embeds: np.ndarray) -> LayerReference:
    """Runs transformers on ``embeds`` [T, H] (positions 0..T-1, causal)."""
    layers = model.model.layers
    captured_in: dict[int, torch.Tensor] = {}
    captured_out: dict[int, torch.Tensor] = {}
    hooks = []
    for i, layer in enumerate(layers):

        def pre(mod, args, kwargs, i=i):
            captured_in[i] = (args[0] if args else kwargs["hidden_states"]).detach().clone()

        def post(mod, args, kwargs, out, i=i):
            captured_out[i] = (out[0] if isinstance(out, tuple) else out).detach().clone()

        hooks.append(layer.register_forward_pre_hook(pre, with_kwargs=True))
        hooks.append(layer.register_forward_hook(post, with_kwargs=True))
    try:
        with torch.no_grad():
            res = model(inputs_embeds=torch.from_numpy(embeds.astype(np.float32))[None], use_cache=True)
    finally:
        for h in hooks:
            h.remove()
    keys, values = [], []
    for i in range(len(layers)):
        k, v = _layer_kv(res.past_key_values, i)
        keys.append(k[0].transpose(0, 1).reshape(k.shape[2], -1).numpy())
        values.append(v[0].transpose(0, 1).reshape(v.shape[2], -1).numpy())
    return LayerReference(
        inputs=[captured_in[i][0].numpy() for i in range(len(layers))],
        outputs=[captured_out[i][0].numpy() for i in range(len(layers))],
        keys=keys,
        values=values,
    )


def post_reference(model: torch.nn.Module, hidden: np.ndarray) -> np.ndarray:
    """Final norm + lm_head on hidden [n, H] -> logits [n, V]."""
    with torch.no_grad():
        x = torch.from_numpy(hidden.astype(np.float32))
        return model.lm_head(model.model.norm(x)).numpy()


def build_endless_tiny_model(directory: Path) -> Path:
    """A tiny random fp32 Qwen2 (4 layers, hidden 256, byte-level tokenizer) built into
    ``directory / "tiny"`` for the host engine (P 32, C 512, history groups 32, 128, 256). Its only
    EOS is id 299, which greedy replies to short prompts do not reach, and its tokenizer config names
    no EOS token: replies run to max_tokens (or a stop string). The serve tests and the benches that
    must run without the real demo use it."""
    import json

    from axllm.build import BuildOptions, build
    from helpers.tiny_tokenizer import write_tiny_tokenizer

    cfg = TinyConfig(
        "qwen2",
        hidden_size=256,
        num_heads=4,
        num_kv_heads=2,
        head_dim=64,
        intermediate_size=1024,
        num_layers=4,
        vocab_size=300,
        seed=5,
    )
    hf = save_model(make_model(cfg), directory / "hf")
    write_tiny_tokenizer(hf, eos_token_ids=[cfg.vocab_size - 1])
    config = json.loads((hf / "tokenizer_config.json").read_text())
    (hf / "tokenizer_config.json").write_text(json.dumps({**config, "eos_token": None}))
    options = BuildOptions(
        prefill_len=32,
        kv_cache_len=512,
        last_kv_cache_len=[32, 128, 256],
        hidden_state_type="fp32",
        weight_type="fp32",
    )
    return build(hf, directory / "tiny", options)
