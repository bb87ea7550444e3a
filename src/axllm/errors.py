"""The exceptions axllm raises.

Bad arguments raise ``ValueError`` (``TypeError`` for a wrong dtype); runtime failures raise a
subclass of :class:`AxllmError` (itself a ``RuntimeError``). Messages name the file, tensor, group
or argument involved.
"""

from __future__ import annotations

from axllm._core import (
    AxllmError,
    ClosedError,
    ContextOverflowError,
    EngineError,
    ModelLoadError,
    UnsupportedModelError,
)

__all__ = ["AxllmError", "ClosedError", "ContextOverflowError", "EngineError", "ModelLoadError", "SessionMismatchError", "TemplateError", "UnsupportedModelError"]


class SessionMismatchError(AxllmError):
    """A saved session does not belong to this model (fingerprint, chat template or KV geometry
    differ); the message says what differs."""


class TemplateError(AxllmError):
    """A chat template failed to compile or render, or called ``raise_exception``; the message
    names the template's origin (its file, or ``"fallback: ChatML"``)."""
