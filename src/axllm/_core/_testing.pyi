"""
Knobs and probes of the host engine (the CPU host engine) for tests and benchmarks.
"""

from __future__ import annotations
import typing

__all__: list[str] = ["host_kernel", "host_threads", "measure_read_bandwidth", "set_host_kernel"]

def host_kernel() -> str:
    """
    The host engine's kernel family in use: avx512, avx2 or generic.
    """

def host_threads() -> int:
    """
    Threads the host engine uses (AXLLM_NUM_THREADS or the core count).
    """

def measure_read_bandwidth(
    bytes: typing.SupportsInt | typing.SupportsIndex = 1073741824,
    repeats: typing.SupportsInt | typing.SupportsIndex = 5,
    threads: typing.SupportsInt | typing.SupportsIndex = 0,
) -> float:
    """
    Best read bandwidth (bytes/s) over `bytes` with `threads` threads (0: the engine's count).
    """

def set_host_kernel(name: str) -> bool:
    """
    Select a kernel family (for tests); False if the CPU cannot run it.
    """
