"""A GGUF file read as a Hugging Face checkpoint: config rebuilt from metadata, tensors
dequantized to float32 under Hugging Face names, Llama q/k projections un-permuted, and the
tokenizer exported with the ``tokenizers`` package."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import numpy as np

from axllm.build.model_spec import ModelSpec, spec_from_config
from axllm.errors import ModelLoadError, UnsupportedModelError

_LAYER_NAMES = {
    "attn_norm.weight": "input_layernorm.weight",
    "attn_q.weight": "self_attn.q_proj.weight",
    "attn_q.bias": "self_attn.q_proj.bias",
    "attn_k.weight": "self_attn.k_proj.weight",
    "attn_k.bias": "self_attn.k_proj.bias",
    "attn_v.weight": "self_attn.v_proj.weight",
    "attn_v.bias": "self_attn.v_proj.bias",
    "attn_output.weight": "self_attn.o_proj.weight",
    "attn_output.bias": "self_attn.o_proj.bias",
    "ffn_norm.weight": "post_attention_layernorm.weight",
    "ffn_gate.weight": "mlp.gate_proj.weight",
    "ffn_up.weight": "mlp.up_proj.weight",
    "ffn_down.weight": "mlp.down_proj.weight",
}
_GLOBAL_NAMES = {
    "token_embd.weight": "model.embed_tokens.weight",
    "output_norm.weight": "model.norm.weight",
    "output.weight": "lm_head.weight",
}
_BLOCK = re.compile(r"^blk\.(\d+)\.(.+)$")


def field_value(reader: Any, key: str, default: Any = None) -> Any:
    """A scalar, string or list stored under ``key`` in a GGUF's metadata."""
    import gguf

    f = reader.fields.get(key)
    if f is None:
        return default
    types = f.types
    if types and types[0] == gguf.GGUFValueType.ARRAY:
        if len(types) > 1 and types[1] == gguf.GGUFValueType.STRING:
            return [bytes(f.parts[i]).decode("utf-8") for i in f.data]
        return [f.parts[i].tolist()[0] for i in f.data]
    if types and types[0] == gguf.GGUFValueType.STRING:
        return bytes(f.parts[f.data[0]]).decode("utf-8")
    return f.parts[f.data[0]].tolist()[0]


def hf_name(gguf_name: str) -> str | None:
    m = _BLOCK.match(gguf_name)
    if m:
        tail = _LAYER_NAMES.get(m.group(2))
        return f"model.layers.{m.group(1)}.{tail}" if tail else None
    return _GLOBAL_NAMES.get(gguf_name)


def unpermute(w: np.ndarray, n_head: int) -> np.ndarray:
    """Undo llama.cpp's interleaving of the RoPE halves in Llama q/k rows."""
    out = w.shape[0]
    tail = w.shape[1:]
    return w.reshape(n_head, out // n_head // 2, 2, *tail).swapaxes(1, 2).reshape(out, *tail)


class GgufCheckpoint:
    """Tensors are dequantized on demand, one at a time, so peak memory stays near one tensor."""

    def __init__(self, path: Path):
        import gguf

        self.path = Path(path)
        self.source = str(self.path)
        if not self.path.is_file():
            raise ModelLoadError(f"{self.path}: GGUF file not found")
        try:
            self.reader = gguf.GGUFReader(str(self.path), "r")
        except Exception as e:  # gguf raises ValueError, struct.error, IndexError... on bad files
            raise ModelLoadError(f"{self.path}: cannot read GGUF: {type(e).__name__}: {e}") from e
        self._tensors = {}
        for t in self.reader.tensors:
            name = hf_name(t.name)
            if name is not None:
                self._tensors[name] = t
        self._rope_freqs = next((t for t in self.reader.tensors if t.name == "rope_freqs.weight"), None)
        self.config = self._config()
        self.spec: ModelSpec = spec_from_config(self.config, self.source)
        self.rope_freq_factors = (
            self._dequantize(self._rope_freqs).reshape(-1) if self._rope_freqs is not None else None
        )

    def _config(self) -> dict[str, Any]:
        arch = field_value(self.reader, "general.architecture")
        if arch not in ("qwen2", "llama"):
            raise UnsupportedModelError(
                f"{self.path}: GGUF architecture {arch!r} is not supported (supported: qwen2, llama)"
            )

        def key(name: str, default: Any = None, required: bool = True) -> Any:
            v = field_value(self.reader, f"{arch}.{name}", default)
            if v is None and required:
                raise ModelLoadError(f"{self.path}: GGUF metadata has no '{arch}.{name}'")
            return v

        hidden = int(key("embedding_length"))
        heads = int(key("attention.head_count"))
        kv_heads = int(key("attention.head_count_kv", heads))
        head_dim = int(key("attention.key_length", hidden // heads))
        embed = self._tensors.get("model.embed_tokens.weight")
        if embed is None:
            raise ModelLoadError(f"{self.path}: GGUF has no 'token_embd.weight' tensor")
        vocab = int(embed.shape[1])  # ggml order: ne[0] = hidden, ne[1] = rows
        config: dict[str, Any] = {
            "model_type": arch,
            "architectures": ["Qwen2ForCausalLM" if arch == "qwen2" else "LlamaForCausalLM"],
            "hidden_size": hidden,
            "num_hidden_layers": int(key("block_count")),
            "num_attention_heads": heads,
            "num_key_value_heads": kv_heads,
            "head_dim": head_dim,
            "intermediate_size": int(key("feed_forward_length")),
            "vocab_size": vocab,
            "rms_norm_eps": float(key("attention.layer_norm_rms_epsilon")),
            "rope_theta": float(key("rope.freq_base", 10000.0, required=False)),
            "max_position_embeddings": int(key("context_length", 0, required=False)),
            "tie_word_embeddings": "lm_head.weight" not in self._tensors,
        }
        scaling = key("rope.scaling.type", None, required=False)
        if scaling == "linear":
            config["rope_scaling"] = {"rope_type": "linear", "factor": float(key("rope.scaling.factor"))}
        elif scaling not in (None, "none"):
            raise UnsupportedModelError(f"{self.path}: GGUF rope scaling {scaling!r} is not supported")
        if arch == "llama":
            config["attention_bias"] = "model.layers.0.self_attn.q_proj.bias" in self._tensors
        return config

    def _dequantize(self, t: Any) -> np.ndarray:
        import gguf

        try:
            data = gguf.quants.dequantize(t.data, t.tensor_type)
        except Exception as e:
            raise ModelLoadError(f"{self.path}: cannot dequantize tensor {t.name!r}: {e}") from e
        return np.asarray(data, dtype=np.float32)

    def has(self, name: str) -> bool:
        return name in self._tensors

    def tensor(self, name: str) -> np.ndarray:
        t = self._tensors.get(name)
        if t is None:
            raise ModelLoadError(f"{self.path}: tensor {name!r} not found in the GGUF")
        w = self._dequantize(t)
        spec = self.config
        if spec["model_type"] == "llama":
            if name.endswith("self_attn.q_proj.weight") or name.endswith("self_attn.q_proj.bias"):
                w = unpermute(w, spec["num_attention_heads"])
            elif name.endswith("self_attn.k_proj.weight") or name.endswith("self_attn.k_proj.bias"):
                w = unpermute(w, spec["num_key_value_heads"])
        return w

    def write_tokenizer(self, out_dir: Path) -> None:
        """Exports the embedded tokenizer; a GGUF without one gets a warning and no files."""
        from axllm.build.gguf_tokenizer import write_tokenizer_files

        if field_value(self.reader, "tokenizer.ggml.model") is None:
            logging.getLogger("axllm").warning(
                "%s: the GGUF has no tokenizer; no tokenizer files written", self.path
            )
            return
        write_tokenizer_files(self.reader, out_dir)
