"""Config normalization: both RoPE config forms, defaults, and rejection of what the engine
cannot run."""

from __future__ import annotations

import numpy as np
import pytest

import axllm
from axllm.build.model_spec import spec_from_config
from axllm.build.rope import rope_tables

BASE = {
    "model_type": "llama",
    "hidden_size": 64,
    "num_attention_heads": 4,
    "num_key_value_heads": 2,
    "num_hidden_layers": 2,
    "intermediate_size": 128,
    "vocab_size": 100,
    "rms_norm_eps": 1e-5,
}
LLAMA3 = {
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 8192,
}


def test_rope_theta_in_either_config_form():
    v4 = spec_from_config(
        {**BASE, "rope_theta": 500000.0, "rope_scaling": {"rope_type": "llama3", **LLAMA3}}, "v4"
    )
    v5 = spec_from_config(
        {**BASE, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "llama3", **LLAMA3}}, "v5"
    )
    old = spec_from_config(
        {**BASE, "rope_theta": 500000.0, "rope_scaling": {"type": "llama3", **LLAMA3}}, "old"
    )
    assert v4.rope_theta == v5.rope_theta == old.rope_theta == 500000.0
    assert v4.rope_type == v5.rope_type == old.rope_type == "llama3"
    for a, b in ((v4, v5), (v4, old)):
        np.testing.assert_array_equal(rope_tables(a)[0], rope_tables(b)[0])
    default = spec_from_config(
        {**BASE, "rope_parameters": {"rope_theta": 500000.0, "rope_type": "default"}}, "d"
    )
    assert not np.array_equal(rope_tables(default)[0], rope_tables(v5)[0])


def test_llama3_inv_freq_matches_transformers():
    import transformers
    from transformers.modeling_rope_utils import ROPE_INIT_FUNCTIONS

    cfg = transformers.LlamaConfig(
        **BASE,
        rope_theta=500000.0,
        max_position_embeddings=131072,
        rope_scaling={"rope_type": "llama3", **LLAMA3},
    )
    inv, scaling = ROPE_INIT_FUNCTIONS["llama3"](cfg, "cpu")
    ours, our_scaling = rope_tables(spec_from_config(cfg.to_dict(), "cfg"))
    np.testing.assert_allclose(ours, inv.numpy(), rtol=2e-6)
    assert our_scaling == scaling


def test_defaults_and_biases():
    s = spec_from_config({**BASE, "model_type": "qwen2", "num_key_value_heads": None}, "q")
    assert s.num_kv_heads == 4 and s.head_dim == 16 and s.qkv_bias and s.rope_theta == 10000.0
    s = spec_from_config({**BASE, "attention_bias": True, "mlp_bias": True}, "l")
    assert s.qkv_bias and s.o_bias and s.mlp_bias


@pytest.mark.parametrize(
    "change,error,match",
    [
        ({"model_type": "gemma3"}, axllm.UnsupportedModelError, "model_type 'gemma3'"),
        (
            {"rope_scaling": {"rope_type": "yarn", "factor": 4.0}},
            axllm.UnsupportedModelError,
            "rope type 'yarn'",
        ),
        ({"num_key_value_heads": 3}, axllm.ModelLoadError, "not a multiple"),
        ({"hidden_size": None}, axllm.ModelLoadError, "'hidden_size'"),
    ],
)
def test_rejections(change, error, match):
    with pytest.raises(error, match=match):
        spec_from_config({**BASE, **change}, "config.json")
