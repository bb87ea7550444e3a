"""``ModelSpec``: the architecture facts the builder needs, normalized from a Hugging Face config.

Accepts both config forms for RoPE (transformers 4.x top-level ``rope_theta``/``rope_scaling`` and
5.x ``rope_parameters``). Only architectures the host engine implements are accepted.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from axllm.errors import ModelLoadError, UnsupportedModelError

SUPPORTED_MODEL_TYPES = ("qwen2", "llama")
SUPPORTED_ROPE_TYPES = ("default", "llama3", "linear")


@dataclass(frozen=True)
class ModelSpec:
    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    rms_norm_eps: float
    rope_theta: float
    rope_type: str = "default"
    rope_params: Mapping[str, Any] = field(default_factory=dict)
    tie_word_embeddings: bool = False
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    max_position_embeddings: int = 0

    @property
    def kv_dim(self) -> int:
        return self.num_kv_heads * self.head_dim


def _require(config: Mapping[str, Any], key: str, source: str) -> Any:
    if key not in config or config[key] is None:
        raise ModelLoadError(f"{source}: config has no '{key}'")
    return config[key]


def rope_settings(config: Mapping[str, Any]) -> tuple[float, str, dict[str, Any]]:
    """Returns (rope_theta, rope_type, scaling parameters) from either config form."""
    params = dict(config.get("rope_parameters") or {})
    scaling = dict(config.get("rope_scaling") or {})
    theta = config.get("rope_theta", params.get("rope_theta", 10000.0))
    merged = {**params, **scaling}
    rope_type = merged.get("rope_type", merged.get("type", "default")) or "default"
    merged.pop("rope_theta", None)
    return float(theta), str(rope_type), merged


def spec_from_config(config: Mapping[str, Any], source: str) -> ModelSpec:
    """Normalizes a Hugging Face ``config.json`` dict. ``source`` names the file in errors."""
    model_type = config.get("model_type")
    if model_type not in SUPPORTED_MODEL_TYPES:
        raise UnsupportedModelError(
            f"{source}: model_type {model_type!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_MODEL_TYPES)})"
        )
    hidden = int(_require(config, "hidden_size", source))
    heads = int(_require(config, "num_attention_heads", source))
    kv_heads = int(config.get("num_key_value_heads") or heads)
    head_dim = int(config.get("head_dim") or hidden // heads)
    theta, rope_type, rope_params = rope_settings(config)
    if rope_type not in SUPPORTED_ROPE_TYPES:
        raise UnsupportedModelError(
            f"{source}: rope type {rope_type!r} is not supported "
            f"(supported: {', '.join(SUPPORTED_ROPE_TYPES)})"
        )
    if heads % kv_heads:
        raise ModelLoadError(
            f"{source}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kv_heads}"
        )
    attention_bias = bool(config.get("attention_bias", False))
    return ModelSpec(
        model_type=model_type,
        hidden_size=hidden,
        num_layers=int(_require(config, "num_hidden_layers", source)),
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=int(_require(config, "intermediate_size", source)),
        vocab_size=int(_require(config, "vocab_size", source)),
        rms_norm_eps=float(config.get("rms_norm_eps", 1e-6)),
        rope_theta=theta,
        rope_type=rope_type,
        rope_params=rope_params,
        tie_word_embeddings=bool(config.get("tie_word_embeddings", False)),
        qkv_bias=model_type == "qwen2" or attention_bias,
        o_bias=model_type == "llama" and attention_bias,
        mlp_bias=model_type == "llama" and bool(config.get("mlp_bias", False)),
        max_position_embeddings=int(config.get("max_position_embeddings") or 0),
    )
