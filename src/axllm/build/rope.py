"""RoPE inverse frequencies per rope type, computed as transformers does (float32).

The engine only sees the final ``inv_freq`` table and an ``attention_scaling`` factor, so every
rope variant is resolved here at build time.
"""

from __future__ import annotations

import math

import numpy as np

from axllm.build.model_spec import ModelSpec


def default_inv_freq(theta: float, head_dim: int) -> np.ndarray:
    exponents = np.arange(0, head_dim, 2, dtype=np.int64).astype(np.float32) / np.float32(head_dim)
    return (1.0 / (np.float32(theta) ** exponents)).astype(np.float32)


def _llama3(inv_freq: np.ndarray, params: dict) -> np.ndarray:
    factor = float(params["factor"])
    low = float(params["low_freq_factor"])
    high = float(params["high_freq_factor"])
    old_context = float(params["original_max_position_embeddings"])
    low_wavelen = old_context / low
    high_wavelen = old_context / high
    wavelen = 2 * math.pi / inv_freq
    scaled = np.where(wavelen > low_wavelen, inv_freq / factor, inv_freq)
    smooth = (old_context / wavelen - low) / (high - low)
    smoothed = (1 - smooth) * scaled / factor + smooth * scaled
    medium = ~(wavelen < high_wavelen) & ~(wavelen > low_wavelen)
    return np.where(medium, smoothed, scaled).astype(np.float32)


def rope_tables(spec: ModelSpec, freq_factors: np.ndarray | None = None) -> tuple[np.ndarray, float]:
    """(inv_freq [head_dim/2] float32, attention_scaling) for ``spec``.

    ``freq_factors`` (GGUF ``rope_freqs.weight``) divides the default frequencies when given; it
    is how llama.cpp stores llama3-style scaling.
    """
    inv_freq = default_inv_freq(spec.rope_theta, spec.head_dim)
    if freq_factors is not None:
        return (inv_freq / freq_factors.astype(np.float32)).astype(np.float32), 1.0
    params = dict(spec.rope_params)
    if spec.rope_type == "llama3":
        return _llama3(inv_freq, params), 1.0
    if spec.rope_type == "linear":
        return (inv_freq / np.float32(params["factor"])).astype(np.float32), 1.0
    return inv_freq, 1.0
