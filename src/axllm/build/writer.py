"""Turns a checkpoint into a pulsar2-shaped directory of software-NPU files."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Union

import ml_dtypes
import numpy as np

from axllm.build.gguf_checkpoint import GgufCheckpoint
from axllm.build.hf_checkpoint import HfCheckpoint
from axllm.build.host_model_writer import EXTENSION, write_host_model
from axllm.build.model_spec import ModelSpec
from axllm.build.rope import rope_tables
from axllm.errors import ModelLoadError

EMBED_FILENAME = "model.embed_tokens.weight.bfloat16.bin"
HIDDEN_STATE_TYPES = ("bf16", "fp16", "fp32")
WEIGHT_TYPES = ("bf16", "fp32")

Checkpoint = Union[HfCheckpoint, GgufCheckpoint]


def default_history_lens(prefill_len: int, kv_cache_len: int) -> list[int]:
    """The history groups a build gets when ``last_kv_cache_len`` is not given: every multiple of
    P below C (for P=128, C=1023: 128, 256, ..., 896), the largest history a chunk can still follow
    within the context. With them any prompt of up to C tokens prefills in P-token chunks; the
    groups are shape specs over the same layer weights, so they add no weight bytes."""
    return list(range(prefill_len, kv_cache_len, prefill_len))


@dataclass
class BuildOptions:
    """Mirrors ``pulsar2 llm_build``'s flags. ``last_kv_cache_len=None`` (the default) gives
    :func:`default_history_lens`; an explicit sequence is used as given (empty: no history
    groups, a 2-group build whose prompts past P go through decode steps)."""

    prefill_len: int = 128
    kv_cache_len: int = 1023
    last_kv_cache_len: Sequence[int] | None = None
    hidden_state_type: str = "bf16"
    weight_type: str = "bf16"

    def validate(self) -> list[int]:
        """Checks the options; returns the sorted history lengths."""
        if self.hidden_state_type not in HIDDEN_STATE_TYPES:
            raise ValueError(
                f"hidden_state_type must be one of {HIDDEN_STATE_TYPES}, got {self.hidden_state_type!r}"
            )
        if self.weight_type not in WEIGHT_TYPES:
            raise ValueError(f"weight_type must be one of {WEIGHT_TYPES}, got {self.weight_type!r}")
        if self.prefill_len < 1:
            raise ValueError(f"prefill_len must be >= 1, got {self.prefill_len}")
        if self.kv_cache_len < self.prefill_len:
            raise ValueError(
                f"kv_cache_len ({self.kv_cache_len}) must be >= prefill_len ({self.prefill_len})"
            )
        if self.last_kv_cache_len is None:
            return default_history_lens(self.prefill_len, self.kv_cache_len)
        history = sorted(set(int(h) for h in self.last_kv_cache_len))
        for h in history:
            if not 0 < h <= self.kv_cache_len:
                raise ValueError(f"last_kv_cache_len {h} must be in 1..kv_cache_len ({self.kv_cache_len})")
        return history


def open_checkpoint(input_path: Path) -> Checkpoint:
    """A Hugging Face directory or a ``.gguf`` file (or a directory holding exactly one)."""
    p = Path(input_path)
    if p.is_file():
        if p.suffix.lower() != ".gguf":
            raise ModelLoadError(
                f"{p}: not a GGUF file; pass a Hugging Face checkpoint directory or a .gguf file"
            )
        return GgufCheckpoint(p)
    if not p.exists():
        raise ModelLoadError(f"{p}: input path does not exist")
    if (p / "config.json").is_file():
        return HfCheckpoint(p)
    ggufs = sorted(p.glob("*.gguf"))
    if len(ggufs) == 1:
        return GgufCheckpoint(ggufs[0])
    raise ModelLoadError(
        f"{p}: neither a Hugging Face checkpoint (no config.json) nor a directory with exactly one .gguf file"
    )


def _bf16(a: np.ndarray) -> np.ndarray:
    """Round-to-nearest-even float32 -> bfloat16."""
    if a.dtype == ml_dtypes.bfloat16:
        return np.ascontiguousarray(a)
    return np.ascontiguousarray(a.astype(np.float32).astype(ml_dtypes.bfloat16))


def _weight(a: np.ndarray, weight_type: str) -> np.ndarray:
    if weight_type == "bf16":
        return _bf16(a)
    return np.ascontiguousarray(a.astype(np.float32))


def _fp32(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.astype(np.float32))


def _check_shape(ckpt: Checkpoint, name: str, a: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if tuple(a.shape) != shape:
        raise ModelLoadError(f"{ckpt.source}: tensor {name!r} has shape {tuple(a.shape)}, expected {shape}")
    return a


def _common_header(spec: ModelSpec, opts: BuildOptions) -> dict[str, object]:
    return {
        "arch": spec.model_type,
        "hidden_size": spec.hidden_size,
        "rms_norm_eps": float(spec.rms_norm_eps),
        "io_dtype": opts.hidden_state_type,
        "weight_dtype": opts.weight_type,
    }


def layer_tensors(
    ckpt: Checkpoint, i: int, weight_type: str, inv_freq: np.ndarray
) -> list[tuple[str, np.ndarray]]:
    spec = ckpt.spec
    h, qd, kvd, f = spec.hidden_size, spec.num_heads * spec.head_dim, spec.kv_dim, spec.intermediate_size
    prefix = f"model.layers.{i}."
    out: list[tuple[str, np.ndarray]] = []

    def get(name: str, shape: tuple[int, ...]) -> np.ndarray:
        return _check_shape(ckpt, prefix + name, ckpt.tensor(prefix + name), shape)

    out.append(("input_layernorm.weight", _fp32(get("input_layernorm.weight", (h,)))))
    for proj, rows, cols, bias in (
        ("self_attn.q_proj", qd, h, spec.qkv_bias),
        ("self_attn.k_proj", kvd, h, spec.qkv_bias),
        ("self_attn.v_proj", kvd, h, spec.qkv_bias),
        ("self_attn.o_proj", h, qd, spec.o_bias),
    ):
        out.append((f"{proj}.weight", _weight(get(f"{proj}.weight", (rows, cols)), weight_type)))
        if bias or ckpt.has(f"{prefix}{proj}.bias"):
            out.append((f"{proj}.bias", _fp32(get(f"{proj}.bias", (rows,)))))
    out.append(("post_attention_layernorm.weight", _fp32(get("post_attention_layernorm.weight", (h,)))))
    for proj, rows, cols in (("mlp.gate_proj", f, h), ("mlp.up_proj", f, h), ("mlp.down_proj", h, f)):
        out.append((f"{proj}.weight", _weight(get(f"{proj}.weight", (rows, cols)), weight_type)))
        if spec.mlp_bias or ckpt.has(f"{prefix}{proj}.bias"):
            out.append((f"{proj}.bias", _fp32(get(f"{proj}.bias", (rows,)))))
    out.append(("rope.inv_freq", _fp32(inv_freq)))
    return out


def build(
    input_path: str | os.PathLike[str],
    output_path: str | os.PathLike[str],
    options: BuildOptions | None = None,
    progress: Callable[[str], None] | None = None,
) -> Path:
    """Builds a pulsar2-shaped directory from a Hugging Face checkpoint or a GGUF file.

    Writes ``<type>_p<P>_l<i>_together.hostmodel`` per layer, ``<type>_post.hostmodel``, the bf16
    embedding table, the tokenizer files and ``config.json`` (the model's config plus an
    ``axllm_build`` section naming the files). Returns the output directory.
    """
    opts = options or BuildOptions()
    history = opts.validate()
    ckpt = open_checkpoint(Path(input_path))
    spec = ckpt.spec
    out = Path(output_path)
    out.mkdir(parents=True, exist_ok=True)
    say = progress or (lambda _msg: None)
    inv_freq, attention_scaling = rope_tables(spec, ckpt.rope_freq_factors)
    template = f"{spec.model_type}_p{opts.prefill_len}_l%d_together.{EXTENSION}"

    for i in range(spec.num_layers):
        header = {
            "kind": "layer",
            "layer_index": i,
            **_common_header(spec, opts),
            "num_heads": spec.num_heads,
            "num_kv_heads": spec.num_kv_heads,
            "head_dim": spec.head_dim,
            "intermediate_size": spec.intermediate_size,
            "attention_scaling": float(attention_scaling),
            "prefill_len": opts.prefill_len,
            "kv_cache_len": opts.kv_cache_len,
            "history_lens": history,
        }
        write_host_model(out / (template % i), header, layer_tensors(ckpt, i, opts.weight_type, inv_freq))
        say(f"layer {i + 1}/{spec.num_layers}")

    embed = _check_shape(
        ckpt,
        "model.embed_tokens.weight",
        ckpt.tensor("model.embed_tokens.weight"),
        (spec.vocab_size, spec.hidden_size),
    )
    if spec.tie_word_embeddings and not ckpt.has("lm_head.weight"):
        lm_head = embed
    else:
        lm_head = _check_shape(
            ckpt, "lm_head.weight", ckpt.tensor("lm_head.weight"), (spec.vocab_size, spec.hidden_size)
        )
    norm = _check_shape(ckpt, "model.norm.weight", ckpt.tensor("model.norm.weight"), (spec.hidden_size,))
    post_name = f"{spec.model_type}_post.{EXTENSION}"
    write_host_model(
        out / post_name,
        {"kind": "post", **_common_header(spec, opts), "vocab_size": spec.vocab_size},
        [("norm.weight", _fp32(norm)), ("lm_head.weight", _weight(lm_head, opts.weight_type))],
    )
    say("post")
    tmp = out / (EMBED_FILENAME + ".tmp")
    _bf16(embed).tofile(tmp)
    os.replace(tmp, out / EMBED_FILENAME)
    say("embeddings")
    ckpt.write_tokenizer(out)
    config = dict(ckpt.config)
    config["axllm_build"] = {
        "format": EXTENSION,
        "source": os.path.abspath(ckpt.source),
        "template_filename_axmodel": template,
        "axmodel_num": spec.num_layers,
        "filename_post_axmodel": post_name,
        "filename_tokens_embed": EMBED_FILENAME,
        "tokens_embed_num": spec.vocab_size,
        "tokens_embed_size": spec.hidden_size,
        "prefill_len": opts.prefill_len,
        "kv_cache_len": opts.kv_cache_len,
        "last_kv_cache_len": history,
        "hidden_state_type": opts.hidden_state_type,
        "weight_type": opts.weight_type,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2, ensure_ascii=False) + "\n")
    return out
