"""A tiny random fp32 Qwen2-shaped model (4 layers, hidden 256) built on the fly for benches that
must run without the real demo model; needs torch and transformers (the tests' helpers)."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tiny_model(directory: Path) -> Path:
    """A tiny random fp32 model whose greedy replies run to max_tokens (its only EOS is an id
    nothing generates here): the serve tests' model, ``build_endless_tiny_model``."""
    sys.path.insert(0, str(ROOT / "tests"))
    from helpers.tiny_models import build_endless_tiny_model

    return build_endless_tiny_model(directory)
