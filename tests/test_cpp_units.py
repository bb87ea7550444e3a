"""Builds the core's C++ unit tests (tests/cpp, no Python involved) and runs them with ctest."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_cpp_unit_tests(tmp_path_factory):
    cmake = shutil.which("cmake")
    ctest = shutil.which("ctest")
    if not cmake or not ctest:
        pytest.skip("cmake/ctest not on PATH")
    build = Path(os.environ.get("AXLLM_CTEST_BUILD_DIR") or tmp_path_factory.mktemp("ctest"))
    werror = "ON" if os.environ.get("CI") else "OFF"
    subprocess.run([cmake, "-S", str(ROOT), "-B", str(build), "-DAXLLM_BUILD_TESTS=ON",
                    "-DAXLLM_BUILD_PYTHON=OFF", f"-DAXLLM_WERROR={werror}"],
                   check=True, capture_output=True)
    r = subprocess.run([cmake, "--build", str(build), "-j2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    r = subprocess.run([ctest, "--test-dir", str(build), "--output-on-failure"],
                       capture_output=True, text=True)
    print(r.stdout)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-2000:]
    assert "100% tests passed" in r.stdout
