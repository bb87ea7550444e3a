"""The exceptions axllm raises.

Bad arguments raise ``ValueError`` (``TypeError`` for a wrong dtype); runtime failures raise a
subclass of :class:`AxllmError` (itself a ``RuntimeError``). Messages name the file, tensor, group
or argument involved.
"""

from __future__ import annotations

from axllm._core import (
    AxllmError,
    BusyError,
    ClosedError,
    ContextOverflowError,
    EngineError,
    ModelLoadError,
    UnsupportedModelError,
)

__all__ = [
    "AxllmError",
    "BusyError",
    "ClosedError",
    "ContextOverflowError",
    "EngineError",
    "KvFileMismatchError",
    "ModelLoadError",
    "TemplateError",
    "UnsupportedModelError",
]


class KvFileMismatchError(AxllmError):
    """A KV file does not belong to this model (fingerprint, chat template or KV geometry differ),
    or has another format version; the message says what differs."""


class TemplateError(AxllmError):
    """A chat template failed to compile or render, or called ``raise_exception``; the message
    names the template's origin (its file, or ``"fallback: ChatML"``)."""
