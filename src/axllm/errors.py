"""The exceptions axllm raises.

Bad arguments raise ``ValueError`` (``TypeError`` for a wrong dtype); runtime failures raise a
subclass of :class:`AxllmError` (itself a ``RuntimeError``). Messages name the file, tensor, group
or argument involved.
"""

from __future__ import annotations

from axllm._core import AxllmError, EngineError, ModelLoadError, UnsupportedModelError

__all__ = ["AxllmError", "EngineError", "ModelLoadError", "UnsupportedModelError"]
