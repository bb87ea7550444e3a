"""Switching the CPU engine's kernel family from a test: the knobs live in the native module's
testing namespace (``axllm._core._testing``) where it exists, else on ``axllm._core`` itself."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from axllm import _core


def _knob(name: str) -> Any:
    """``_core._testing.<name>`` if the testing namespace has it, else ``_core.<name>``."""
    testing = getattr(_core, "_testing", None)
    return getattr(testing, name) if hasattr(testing, name) else getattr(_core, name)


def cpu_kernel() -> str:
    """The kernel family in use (avx512, avx2 or generic)."""
    return _knob("cpu_kernel")()


def set_cpu_kernel(name: str) -> bool:
    """Selects a kernel family for the whole process; False if this CPU cannot run it."""
    return _knob("set_cpu_kernel")(name)


@contextmanager
def cpu_kernel_family(name: str) -> Iterator[bool]:
    """Runs the body with kernel family ``name`` selected (yields False, changing nothing, when this
    CPU cannot run it) and restores the family that was in use before, even on failure."""
    before = cpu_kernel()
    selected = set_cpu_kernel(name)
    try:
        yield selected
    finally:
        if not set_cpu_kernel(before):
            raise RuntimeError(f"could not restore the CPU kernel family {before!r}")
