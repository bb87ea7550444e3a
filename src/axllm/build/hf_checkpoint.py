"""A Hugging Face checkpoint directory: ``config.json`` plus safetensors (fp32, fp16 or bf16)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
from safetensors import SafetensorError, safe_open

from axllm.build.model_spec import ModelSpec, spec_from_config
from axllm.errors import ModelLoadError

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "chat_template.jinja",
    "chat_template.json",
    "vocab.json",
    "merges.txt",
    "tokenizer.model",
    "added_tokens.json",
)


class HfCheckpoint:
    """Reads tensors lazily by Hugging Face name; errors name the directory, file and tensor."""

    def __init__(self, directory: Path):
        self.directory = Path(directory)
        config_path = self.directory / "config.json"
        if not config_path.is_file():
            raise ModelLoadError(f"{config_path}: missing (a Hugging Face checkpoint needs config.json)")
        try:
            self.config = json.loads(config_path.read_text())
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"{config_path}: cannot read: {e}") from e
        self.source = str(config_path)
        self.spec: ModelSpec = spec_from_config(self.config, self.source)
        self.rope_freq_factors: np.ndarray | None = None
        files = sorted(self.directory.glob("*.safetensors"))
        if not files:
            raise ModelLoadError(f"{self.directory}: no *.safetensors files")
        self._where: dict[str, Path] = {}
        self._handles = {}
        for f in files:
            try:
                handle = safe_open(str(f), framework="numpy")
            except (SafetensorError, OSError) as e:
                raise ModelLoadError(f"{f}: cannot read safetensors: {e}") from e
            self._handles[f] = handle
            for key in handle.keys():
                self._where[key] = f

    def has(self, name: str) -> bool:
        return name in self._where

    def tensor(self, name: str) -> np.ndarray:
        if name not in self._where:
            raise ModelLoadError(f"{self.directory}: tensor {name!r} not found in any safetensors file")
        path = self._where[name]
        try:
            return self._handles[path].get_tensor(name)
        except (SafetensorError, OSError, ValueError) as e:
            raise ModelLoadError(f"{path}: cannot read tensor {name!r}: {e}") from e

    def write_tokenizer(self, out_dir: Path) -> None:
        for name in TOKENIZER_FILES:
            src = self.directory / name
            if src.is_file():
                shutil.copyfile(src, out_dir / name)
