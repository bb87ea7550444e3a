"""What a generation takes and gives: ``GenerationConfig`` (the options, defined once in C++),
``GenerationOptions`` (the same fields as keyword arguments), and the results ``Completion``
(whole) and ``Chunk`` (streamed), with ``Metrics``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Optional, Union

from typing_extensions import Literal, TypedDict

from axllm._core import GenerationConfig

__all__ = [
    "FINISH_REASONS",
    "Chunk",
    "Completion",
    "ContextUsage",
    "GenerationConfig",
    "GenerationOptions",
    "Metrics",
]


class GenerationOptions(TypedDict, total=False):
    """The fields of ``GenerationConfig`` as keyword arguments of ``LLM.generate``/``LLM.chat``
    (see ``GenerationConfig`` for each one's meaning and range). A test keeps the two in step."""

    max_new_tokens: Optional[int]
    temperature: Optional[float]
    top_k: Optional[int]
    top_p: Optional[float]
    min_p: Optional[float]
    repetition_penalty: Optional[float]
    presence_penalty: Optional[float]
    frequency_penalty: Optional[float]
    seed: Optional[int]
    stop: Union[str, Sequence[str], None]
    overflow: Literal["error", "truncate_left", "drop_oldest_turns"]


FINISH_REASONS = ("stop", "length", "cancelled", "context_full")


@dataclass(frozen=True)
class ContextUsage:
    """Tokens held in the KV cache (``used``) and the context length (``capacity``), as
    ``LLM.context_usage`` gives them; a frozen dataclass (assigning a field raises
    ``dataclasses.FrozenInstanceError``)."""

    used: int
    capacity: int


@dataclass(frozen=True)
class Metrics:
    """Counts and timings of one generation, measured by the C++ runtime.

    * ``prompt_tokens``: the prompt's length; ``cached_tokens`` of them were reused from the KV
      cache and ``prefilled_tokens`` (the rest) were run through the model.
    * ``generated_tokens``: the tokens returned (EOS excluded).
    * ``ttft_ms``: from the generation's first step (the call, or a stream's first ``next()``) to
      the first token sampled, the prefill included; ``prefill_ms``: from the same start to the
      end of the prefill; ``decode_ms``: from the first token to the last step.
    * ``prefill_tokens_per_s``: ``prompt_tokens`` per second of ``prefill_ms`` (cached tokens
      count, so reuse shows as speed); ``decode_tokens_per_s``: the tokens after the first per
      second of ``decode_ms`` (0 with fewer than two tokens).

    A frozen dataclass: assigning a field raises ``dataclasses.FrozenInstanceError``.
    """

    prompt_tokens: int = 0
    generated_tokens: int = 0
    cached_tokens: int = 0
    prefilled_tokens: int = 0
    ttft_ms: float = 0.0
    prefill_ms: float = 0.0
    decode_ms: float = 0.0
    prefill_tokens_per_s: float = 0.0
    decode_tokens_per_s: float = 0.0

    @classmethod
    def from_core(cls, d: Mapping[str, float]) -> Metrics:
        """The metrics from the runtime's dict (``axllm._core`` generation ``metrics``). Raises
        KeyError for a missing field, TypeError/ValueError for a value that is not a number."""
        return cls(
            prompt_tokens=int(d["prompt_tokens"]),
            generated_tokens=int(d["generated_tokens"]),
            cached_tokens=int(d["cached_tokens"]),
            prefilled_tokens=int(d["prefilled_tokens"]),
            ttft_ms=float(d["ttft_ms"]),
            prefill_ms=float(d["prefill_ms"]),
            decode_ms=float(d["decode_ms"]),
            prefill_tokens_per_s=float(d["prefill_tokens_per_s"]),
            decode_tokens_per_s=float(d["decode_tokens_per_s"]),
        )


@dataclass(frozen=True)
class Chunk:
    """A piece of a streamed generation. ``text`` is new text (possibly empty in the last
    chunk); ``token_ids`` are the ids whose text this chunk carries (ids whose text is held back,
    an incomplete UTF-8 sequence or the possible start of a stop string, join a later chunk). The
    last chunk has ``finish_reason`` (one of ``FINISH_REASONS``) and ``metrics``, the others
    None; ``stop`` names the stop string that ended the generation, if one did (its text is not
    in any chunk). A frozen dataclass: assigning a field raises
    ``dataclasses.FrozenInstanceError``."""

    text: str
    token_ids: list[int] = field(default_factory=list)
    finish_reason: Optional[str] = None
    metrics: Optional[Metrics] = None
    stop: Optional[str] = None


@dataclass(frozen=True)
class Completion:
    """A whole generation: the text (stop strings excluded), the generated ids (EOS excluded),
    why it finished (one of ``FINISH_REASONS``: ``"stop"`` for EOS or a stop string,
    ``"length"`` for ``max_new_tokens``, ``"cancelled"`` for ``LLM.stop()``, ``"context_full"``),
    its ``Metrics``, and ``stop``, the stop string that ended it, if one did. A frozen dataclass:
    assigning a field raises ``dataclasses.FrozenInstanceError``."""

    text: str
    token_ids: list[int]
    finish_reason: str
    metrics: Metrics
    stop: Optional[str] = None

    @classmethod
    def from_chunks(cls, chunks: Sequence[Chunk]) -> Completion:
        """The whole of a stream; RuntimeError when its last chunk carries no finish reason."""
        last = chunks[-1] if chunks else None
        if last is None or last.finish_reason is None or last.metrics is None:
            raise RuntimeError("the stream ended without a final chunk carrying a finish reason")
        ids = [i for chunk in chunks for i in chunk.token_ids]
        return cls("".join(chunk.text for chunk in chunks), ids, last.finish_reason, last.metrics, last.stop)
