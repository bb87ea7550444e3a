"""axllm: run pulsar2-compiled LLMs on AXERA NPUs, or on the software NPU where there is none."""

from __future__ import annotations

from axllm import _logging
from axllm.errors import (
    AxllmError,
    ContextOverflowError,
    EngineError,
    ModelLoadError,
    SessionMismatchError,
    TemplateError,
    UnsupportedModelError,
)
from axllm.generation import Chunk, Completion, ContextUsage, Metrics
from axllm.session import InferenceSession, NodeArg

from axllm._version import __version__

__all__ = [
    "LLM",
    "AxllmError",
    "Chunk",
    "Completion",
    "ContextOverflowError",
    "ContextUsage",
    "EngineError",
    "Metrics",
    "InferenceSession",
    "ModelLoadError",
    "NodeArg",
    "SessionMismatchError",
    "TemplateError",
    "UnsupportedModelError",
    "__version__",
]

_logging.install()


def __getattr__(name: str):
    # LLM pulls in the tokenizer and template modules; InferenceSession users need neither.
    if name == "LLM":
        from axllm.llm import LLM

        return LLM
    raise AttributeError(f"module 'axllm' has no attribute {name!r}")
