"""axllm: run pulsar2-compiled LLMs on AXERA NPUs, or on the software NPU where there is none."""

from __future__ import annotations

from axllm import _logging
from axllm.errors import AxllmError, EngineError, ModelLoadError, UnsupportedModelError
from axllm.session import InferenceSession, NodeArg

__version__ = "0.1.0"

__all__ = [
    "AxllmError",
    "EngineError",
    "InferenceSession",
    "ModelLoadError",
    "NodeArg",
    "UnsupportedModelError",
    "__version__",
]

_logging.install()
