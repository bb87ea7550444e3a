"""The host counterpart of ``pulsar2 llm_build``: a Hugging Face or GGUF checkpoint in, a
pulsar2-shaped directory of software-NPU files out (``python -m axllm.build``)."""

from __future__ import annotations

from axllm.build.writer import EMBED_FILENAME, BuildOptions, build, default_history_lens, open_checkpoint

__all__ = ["EMBED_FILENAME", "BuildOptions", "build", "default_history_lens", "open_checkpoint"]
