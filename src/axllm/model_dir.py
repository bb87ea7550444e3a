"""Where a model directory keeps what the Python side needs: the tokenizer files (in the directory
or in a tokenizer subdirectory, as AXERA's packages ship them), ax-llm's ``config.json`` overrides
and ``post_config.json`` sampling defaults."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from axllm._core import MODEL_OVERRIDE_KEYS
from axllm.errors import ModelLoadError


def read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{path}: cannot read JSON: {e}") from e
    if not isinstance(data, dict):
        raise ModelLoadError(f"{path}: expected a JSON object")
    return data


def find_tokenizer_dir(root: Path) -> Path:
    """The directory holding ``tokenizer.json``: ``root`` itself, else its only subdirectory that
    has one. Raises ModelLoadError naming what was searched."""
    if (root / "tokenizer.json").is_file():
        return root
    found = sorted(p.parent for p in root.glob("*/tokenizer.json"))
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        raise ModelLoadError(
            f"{root}: several tokenizer directories: {', '.join(map(str, found))}; "
            "pass tokenizer= to choose one"
        )
    raise ModelLoadError(f"{root / 'tokenizer.json'}: missing (also searched {root}/*/tokenizer.json)")


def config_overrides(root: Path) -> dict[str, Any]:
    """ax-llm style file overrides from ``root/config.json`` (top level or our ``axllm_build``)."""
    path = root / "config.json"
    if not path.is_file():
        return {}
    config = read_json(path)
    out = {k: config[k] for k in MODEL_OVERRIDE_KEYS if k in config}
    build = config.get("axllm_build")
    if isinstance(build, dict):
        for k in MODEL_OVERRIDE_KEYS:
            if k in build and k not in out:
                out[k] = build[k]
    return out


def post_config_sampling(root: Path) -> dict[str, Any] | None:
    """AXERA ``post_config.json`` as vendor-mode sampling parameters, or None when absent."""
    path = root / "post_config.json"
    if not path.is_file():
        return None
    c = read_json(path)
    try:
        return {
            "mode": "vendor",
            "temperature": float(c["temperature"]) if c.get("enable_temperature") else 1.0,
            "repetition_penalty": float(c["repetition_penalty"])
            if c.get("enable_repetition_penalty")
            else 1.0,
            "penalty_window": int(c.get("penalty_window", 20)),
            "enable_top_p": bool(c.get("enable_top_p_sampling", False)),
            "top_p": float(c.get("top_p", 1.0)),
            "enable_top_k": bool(c.get("enable_top_k_sampling", False)),
            "top_k": int(c.get("top_k", 1)),
        }
    except (TypeError, ValueError) as e:
        raise ModelLoadError(f"{path}: bad value: {e}") from e


def generation_config_sampling(tok_dir: Path) -> dict[str, Any] | None:
    """Sampling defaults from a Hugging Face ``generation_config.json``, as transformers reads
    them: greedy unless ``do_sample`` is true; then temperature, top_k (default 50), top_p, min_p
    and repetition_penalty. None when the file sets no sampling field."""
    path = tok_dir / "generation_config.json"
    if not path.is_file():
        return None
    c = read_json(path)
    keys = ("do_sample", "temperature", "top_k", "top_p", "min_p", "repetition_penalty")
    if not any(k in c for k in keys):
        return None
    out: dict[str, Any] = {"mode": "hf"}
    if c.get("repetition_penalty") is not None:
        out["repetition_penalty"] = float(c["repetition_penalty"])
    if not c.get("do_sample", False):
        out["temperature"] = 0.0
        return out
    temperature, top_k = c.get("temperature"), c.get("top_k")
    out["temperature"] = float(temperature if temperature is not None else 1.0)
    out["top_k"] = int(top_k if top_k is not None else 50)
    for k in ("top_p", "min_p"):
        if c.get(k) is not None:
            out[k] = float(c[k])
    return out
