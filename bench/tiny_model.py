"""A tiny random fp32 Qwen2-shaped model (4 layers, hidden 256) built on the fly for benches that
must run without the real demo model; needs torch and transformers (the tests' helpers)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tiny_model(directory: Path) -> Path:
    """A tiny random fp32 model whose greedy replies run to max_tokens (its only EOS is an id
    nothing generates here)."""
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.tiny_models import TinyConfig, make_model, save_model
    from helpers.tiny_tokenizer import write_tiny_tokenizer

    from axllm.build import BuildOptions, build

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
    return build(
        hf,
        directory / "tiny",
        BuildOptions(
            prefill_len=32,
            kv_cache_len=512,
            last_kv_cache_len=[32, 128, 256],
            hidden_state_type="fp32",
            weight_type="fp32",
        ),
    )
