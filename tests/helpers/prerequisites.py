"""The one rule for prerequisites a test cannot install itself. Test dependencies (Python packages
in the test extras, cmake/ctest) are imported or looked up plainly, so a missing one fails the run.
Only what lies outside the project's dependencies may skip, and only outside CI: the real models
fetched from PyPI and the aarch64 cross toolchain. With AXLLM_REQUIRE_REAL_MODELS=1 (.ci/run) those
fail as well."""

from __future__ import annotations

import os

import pytest


def required() -> bool:
    """True where every prerequisite must be there (CI: AXLLM_REQUIRE_REAL_MODELS=1)."""
    return os.environ.get("AXLLM_REQUIRE_REAL_MODELS") == "1"


def require_or_skip(reason: str) -> None:
    """Skips the test for ``reason``, except where required(), where it fails."""
    if required():
        pytest.fail(f"required test could not run: {reason}")
    pytest.skip(reason)
