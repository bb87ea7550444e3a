"""The response objects of OpenAI's API, made from axllm's chunks and metrics, and their
server-sent-event framing.

* ``finish_reason``: axllm's ``stop`` and ``length`` pass through; ``context_full`` (the KV cache
  filled up) is reported as ``length``; the raw reason is in the extension field.
* ``usage``: ``prompt_tokens``, ``completion_tokens`` (tokens generated, EOS included),
  ``total_tokens`` and ``prompt_tokens_details.cached_tokens`` (prompt tokens whose KV was reused).
* Extension field ``axllm`` (on whole responses and on a stream's finish chunk): the server's own
  ``ttft_ms`` (from the model's turn to its first token, prefill included), ``prefill_ms``,
  ``decode_ms``, ``prefill_tokens_per_s``, ``decode_tokens_per_s``, ``queue_ms`` (waiting for the
  model), ``restored_tokens`` (prompt tokens found in a restored KV slot) and ``finish_reason``.
* A stream is a sequence of ``data: <json>`` events: for chat, a first ``chat.completion.chunk``
  whose delta holds the role, content deltas, a chunk with an empty delta and the finish reason,
  then (with ``stream_options.include_usage``) a chunk with no choices and the usage, and finally
  ``data: [DONE]``. Text completions stream ``text_completion`` objects the same way. An error
  after the stream has started is sent as one ``data: {"error": {...}}`` event, and the stream
  ends without ``[DONE]``.
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any, Optional

from axllm.generation import Metrics
from axllm.serve.model_queue import RunInfo

FINISH_REASONS = {"stop": "stop", "length": "length", "context_full": "length", "cancelled": "stop"}
DONE = b"data: [DONE]\n\n"


def sse(obj: Any) -> bytes:
    """One server-sent event carrying ``obj`` as JSON."""
    return b"data: " + dumps(obj) + b"\n\n"


def dumps(obj: Any) -> bytes:
    """Compact UTF-8 JSON."""
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


def usage(metrics: Metrics) -> dict[str, Any]:
    """OpenAI's ``usage`` object for one generation."""
    return {
        "prompt_tokens": metrics.prompt_tokens,
        "completion_tokens": metrics.generated_tokens,
        "total_tokens": metrics.prompt_tokens + metrics.generated_tokens,
        "prompt_tokens_details": {"cached_tokens": metrics.cached_tokens},
    }


def extension(metrics: Metrics, finish_reason: str, info: RunInfo) -> dict[str, Any]:
    """The ``axllm`` extension field: the server's own timings of one generation."""
    return {
        "ttft_ms": round(metrics.ttft_ms, 3),
        "prefill_ms": round(metrics.prefill_ms, 3),
        "decode_ms": round(metrics.decode_ms, 3),
        "prefill_tokens_per_s": round(metrics.prefill_tokens_per_s, 3),
        "decode_tokens_per_s": round(metrics.decode_tokens_per_s, 3),
        "queue_ms": round(info.queue_ms, 3),
        "restored_tokens": info.restored_tokens,
        "finish_reason": finish_reason,
    }


class Reply:
    """The objects of one response: ``chat`` selects chat completion objects, otherwise text
    completion objects; ``id`` and ``created`` are shared by all of them."""

    def __init__(self, model: str, chat: bool):
        self.model = model
        self.chat = chat
        self.id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
        self.created = int(time.time())
        self._frames: dict[bool, tuple[bytes, bytes]] = {}

    def _base(self, stream: bool) -> dict[str, Any]:
        kind = ("chat.completion.chunk" if stream else "chat.completion") if self.chat else "text_completion"
        return {"id": self.id, "object": kind, "created": self.created, "model": self.model}

    def _choice(self, text: Optional[str], role: bool, finish: Optional[str], stream: bool) -> dict[str, Any]:
        if not self.chat:
            return {"text": text or "", "index": 0, "logprobs": None, "finish_reason": finish}
        body: dict[str, Any] = {}
        if role:
            body["role"] = "assistant"
        if text is not None:
            body["content"] = text
        key = "delta" if stream else "message"
        if not stream:
            body.setdefault("role", "assistant")
            body.setdefault("content", "")
        return {"index": 0, key: body, "logprobs": None, "finish_reason": finish}

    def chunk(
        self,
        text: Optional[str] = None,
        *,
        role: bool = False,
        finish: Optional[str] = None,
        include_usage: bool = False,
    ) -> dict[str, Any]:
        """A streamed chunk: a delta of ``text`` (chat: with the role when ``role``), or the finish
        chunk when ``finish`` (an axllm finish reason) is given."""
        obj = self._base(stream=True)
        obj["choices"] = [self._choice(text, role, FINISH_REASONS.get(finish) if finish else None, True)]
        if include_usage:
            obj["usage"] = None
        return obj

    def delta_event(self, text: str, include_usage: bool = False) -> bytes:
        """``sse(self.chunk(text, include_usage=include_usage))``, from a framing rendered once
        per reply (the per-token path of a stream)."""
        frame = self._frames.get(include_usage)
        if frame is None:
            mark = "\x00"
            event = sse(self.chunk(mark, include_usage=include_usage))
            head, _, tail = event.partition(dumps(mark))
            frame = self._frames[include_usage] = (head, tail)
        return frame[0] + dumps(text) + frame[1]

    def usage_chunk(self, metrics: Metrics) -> dict[str, Any]:
        """The chunk ``stream_options.include_usage`` asks for: no choices, the usage."""
        obj = self._base(stream=True)
        obj["choices"] = []
        obj["usage"] = usage(metrics)
        return obj

    def whole(self, text: str, finish: str, metrics: Metrics, info: RunInfo) -> dict[str, Any]:
        """The non-streamed response."""
        obj = self._base(stream=False)
        obj["choices"] = [self._choice(text, True, FINISH_REASONS[finish], False)]
        obj["usage"] = usage(metrics)
        obj["axllm"] = extension(metrics, finish, info)
        return obj
