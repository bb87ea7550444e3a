"""axllm: run pulsar2-compiled LLMs on AXERA NPUs, or on the host engine where there is none."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from axllm import _logging
from axllm.errors import (
    AxllmError,
    BusyError,
    ClosedError,
    ContextOverflowError,
    EngineError,
    KvFileMismatchError,
    ModelLoadError,
    TemplateError,
    UnsupportedModelError,
)
from axllm.generation import Chunk, Completion, ContextUsage, GenerationConfig, GenerationOptions, Metrics
from axllm.inference_session import InferenceSession, NodeArg
from axllm.kv_snapshot import KvSnapshot

if TYPE_CHECKING:
    from axllm.demo import demo_model
    from axllm.llm import LLM

from axllm._version import __version__

__all__ = [
    "LLM",
    "AxllmError",
    "BusyError",
    "Chunk",
    "ClosedError",
    "Completion",
    "ContextOverflowError",
    "ContextUsage",
    "EngineError",
    "GenerationConfig",
    "GenerationOptions",
    "InferenceSession",
    "KvFileMismatchError",
    "KvSnapshot",
    "Metrics",
    "ModelLoadError",
    "NodeArg",
    "TemplateError",
    "UnsupportedModelError",
    "__version__",
    "demo_model",
]

_logging.install()


def __getattr__(name: str) -> Any:
    # LLM pulls in the tokenizer and template modules; InferenceSession users need neither.
    if name == "LLM":
        from axllm.llm import LLM

        return LLM
    if name == "demo_model":  # pulls in the builder (gguf, the checkpoint readers)
        from axllm.demo import demo_model

        return demo_model
    raise AttributeError(f"module 'axllm' has no attribute {name!r}")
