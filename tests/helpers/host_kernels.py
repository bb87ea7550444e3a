"""Switching the host engine's kernel family from a test (``axllm._core._testing``)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from axllm._core import _testing


def host_kernel() -> str:
    """The kernel family in use (avx512, avx2 or generic)."""
    return _testing.host_kernel()


@contextmanager
def host_kernel_family(name: str) -> Iterator[bool]:
    """Runs the body with kernel family ``name`` selected (yields False, changing nothing, when this
    CPU cannot run it) and restores the family that was in use before, even on failure."""
    before = host_kernel()
    selected = _testing.set_host_kernel(name)
    try:
        yield selected
    finally:
        if not _testing.set_host_kernel(before):
            raise RuntimeError(f"could not restore the CPU kernel family {before!r}")
