"""``KvSnapshot``: the KV cache of one model at one moment, in host memory."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KvSnapshot"]


@dataclass(frozen=True)
class KvSnapshot:
    """Token ids, the raw K and V rows of every layer (``len(tokens)`` rows each, in the engine's
    layout and dtype) and how many leading tokens are pinned (kept across ``LLM.reset()``). Made
    by ``LLM.snapshot()``, put back by ``LLM.restore()``."""

    tokens: list[int]
    k: list[bytes]
    v: list[bytes]
    pinned: int = 0

    @property
    def nbytes(self) -> int:
        """Host memory held by the rows."""
        return sum(map(len, self.k)) + sum(map(len, self.v))
