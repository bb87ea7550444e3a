"""What the command-line tools (``python -m axllm.chat``, ``axllm.serve``, ``axllm.inspect``)
share: their ``--help`` text and their ``--threads`` option."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Callable

THREADS_ENV = "AXLLM_NUM_THREADS"


def plain_text(doc: str) -> str:
    """A module docstring as ``--help`` shows it: without the reStructuredText literal quotes
    (double backquotes) Python's own help reads."""
    return doc.replace("``", "")


def int_at_least(minimum: int) -> Callable[[str], int]:
    """argparse type: an integer >= ``minimum``."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = minimum - 1
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be an integer >= {minimum}, got {text!r}")
        return value

    return parse


def add_threads_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--threads",
        type=int_at_least(1),
        metavar="N",
        help=f"threads of the host engine (sets ${THREADS_ENV}; default: ${THREADS_ENV}, "
        "else the CPUs this process may run on)",
    )


def host_threads() -> int:
    """The host engine's thread count: $AXLLM_NUM_THREADS if set and positive, else the CPUs this
    process may run on."""
    from axllm import _core

    return int(_core._testing.host_threads())


def set_host_threads(n: int) -> None:
    """Makes the host engine use ``n`` threads by setting $AXLLM_NUM_THREADS, which the engine
    reads once, when the first model of the process loads: call it before any model loads.

    Raises ValueError when ``n`` differs from the current count and ``axllm.LLM`` has already
    been imported in this process (a model may be loaded, its engine fixed at the old count).
    """
    current = host_threads()
    if n != current and "axllm.llm" in sys.modules:
        raise ValueError(
            f"--threads {n}: this process may already have loaded a model with {current} host "
            f"engine threads (the count is fixed when the first model loads); set {THREADS_ENV}="
            f"{n} before starting Python instead"
        )
    os.environ[THREADS_ENV] = str(n)
