"""Child processes that tests send signals to: started with SIGINT and SIGTERM at their default
dispositions, and killed when the test ends, passed or failed.

A test run started as a background job (``nohup python -m pytest ... &``, or ``cmd &`` in a
non-interactive shell) ignores SIGINT, and an ignored signal stays ignored across fork and exec:
without the reset the child never sees the SIGINT (or Ctrl-C on its terminal) the test sends, and
a child looping over ``llm.generate`` would run on after the test failed.
"""

from __future__ import annotations

import contextlib
import signal
import subprocess
from collections.abc import Iterator
from typing import Any


def default_signals() -> None:
    """``preexec_fn`` of a signalled child: SIGINT and SIGTERM back to their defaults (a Python
    child then turns SIGINT into KeyboardInterrupt, as it does when started from a terminal)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


@contextlib.contextmanager
def signalled_child(args: list[str], **popen: Any) -> Iterator[subprocess.Popen]:
    """``subprocess.Popen(args, **popen)`` with default signal dispositions; on leaving the block
    the child is killed if it still runs, then reaped and its pipes closed."""
    with subprocess.Popen(args, preexec_fn=default_signals, **popen) as proc:
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.kill()
