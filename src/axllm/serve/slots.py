"""``KvSlots``: the KV caches of the most recent conversations, kept in host memory.

Contract:

* Holds at most ``capacity`` ``KvSnapshot``s, least recently used first.
* ``best(ids)`` names the snapshot sharing the longest token prefix with ``ids`` and the length of
  that prefix; ``use`` marks a snapshot as just used.
* ``save(snapshot)`` stores a snapshot as the most recent one. It replaces every stored snapshot
  whose tokens are a prefix of the new one's (the same conversation, one turn behind) and then
  drops the least recently used snapshots beyond ``capacity``.
* Not thread-safe: the server calls it only while it holds the model.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

from axllm.llm import KvSnapshot


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    """How many leading token ids ``a`` and ``b`` share."""
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


class KvSlots:
    """See the module docstring for the contract."""

    def __init__(self, capacity: int):
        if capacity < 0:
            raise ValueError(f"capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._snapshots: list[KvSnapshot] = []

    def __len__(self) -> int:
        return len(self._snapshots)

    @property
    def nbytes(self) -> int:
        """Host memory held by the stored K/V rows."""
        return sum(s.nbytes for s in self._snapshots)

    def best(self, ids: Sequence[int]) -> tuple[Optional[KvSnapshot], int]:
        """The snapshot sharing the longest prefix with ``ids`` (the most recent on a tie) and the
        prefix length; ``(None, 0)`` when none shares a token."""
        found: Optional[KvSnapshot] = None
        longest = 0
        for snap in self._snapshots:
            n = common_prefix(snap.tokens, ids)
            if n >= longest and n > 0:
                found, longest = snap, n
        return found, longest

    def use(self, snapshot: KvSnapshot) -> None:
        """Marks a stored snapshot as the most recently used."""
        for i, snap in enumerate(self._snapshots):
            if snap is snapshot:
                self._snapshots.append(self._snapshots.pop(i))
                return

    def save(self, snapshot: KvSnapshot) -> None:
        """Stores ``snapshot`` as the most recent; see the module docstring."""
        if self.capacity == 0:
            return
        n = len(snapshot.tokens)
        self._snapshots = [
            s
            for s in self._snapshots
            if not (len(s.tokens) <= n and snapshot.tokens[: len(s.tokens)] == s.tokens)
        ]
        self._snapshots.append(snapshot)
        del self._snapshots[: max(0, len(self._snapshots) - self.capacity)]
