"""Builds the core's C++ unit tests (tests/cpp, no Python involved) and runs them with ctest."""

from __future__ import annotations

import shutil
import subprocess


def test_cpp_unit_tests(cpp_build):
    build = cpp_build
    ctest = shutil.which("ctest")
    r = subprocess.run(
        [ctest, "--test-dir", str(build), "--output-on-failure"], capture_output=True, text=True
    )
    print(r.stdout)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "100% tests passed" in r.stdout
