"""Bridge from the native core's single log sink to ``logging.getLogger("axllm")``."""

from __future__ import annotations

import atexit
import logging

from axllm import _core

logger = logging.getLogger("axllm")


def _forward(level: int, message: str) -> None:
    logger.log(level, message)


def install() -> None:
    """Route native records to the ``axllm`` logger; undone at interpreter exit."""
    _core.set_log_sink(_forward)
    atexit.register(_core.set_log_sink, None)
