"""The README's ```python blocks run as written, each in a fresh interpreter, in order: on a tiny
model (``AXLLM_DEMO_MODEL`` points ``axllm.demo_model()`` at it) and once on the real demo build.

A block whose first line says it needs the server (``# needs the server running: python -m
axllm.serve --demo ...``) runs with ``python -m axllm.serve --demo`` started first on the README's
port, 8000, and stopped after it. The server is started here rather than the block left out, so that
the OpenAI-client snippet is run too; the port is the README's because the block is run unchanged."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from helpers.prerequisites import require_or_skip
from helpers.tiny_models import TinyConfig, make_model, save_model
from helpers.tiny_tokenizer import write_tiny_tokenizer

from axllm.build import BuildOptions, build

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"^```python\n(.*?)^```\n", re.MULTILINE | re.DOTALL)
SERVER_MARK = "# needs the server running: python -m axllm.serve --demo"
SERVER_URL = "http://127.0.0.1:8000"


def readme_blocks() -> list[tuple[int, str]]:
    """(line number, code) of every ```python block of the README, in order."""
    text = README.read_text(encoding="utf-8")
    return [(text.count("\n", 0, m.start()) + 1, m.group(1)) for m in BLOCK.finditer(text)]


def needs_server(code: str) -> bool:
    return code.startswith(SERVER_MARK)


def test_every_block_is_standalone():
    blocks = readme_blocks()
    assert len(blocks) >= 4, "the README's python blocks were not found"
    for line, code in blocks:
        if needs_server(code):
            continue
        assert "import axllm" in code and "axllm.demo_model()" in code, f"README line {line}"


@pytest.fixture(scope="module")
def tiny_demo(tmp_path_factory) -> Path:
    """A tiny random qwen2 model with the byte-level tokenizer and a ChatML template, built with
    the builder's default history groups."""
    root = tmp_path_factory.mktemp("readme_tiny")
    hf = save_model(make_model(TinyConfig("qwen2", num_kv_heads=2, seed=3)), root / "hf")
    write_tiny_tokenizer(hf)
    return build(
        hf,
        root / "build",
        BuildOptions(prefill_len=32, kv_cache_len=512, hidden_state_type="fp32", weight_type="fp32"),
    )


def _port_free() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", 8000))
        except OSError:
            return False
    return True


def _start_server(env: dict[str, str], log: Path, timeout: float) -> subprocess.Popen:
    """``python -m axllm.serve --demo`` on 127.0.0.1:8000 (stderr to ``log``), once ``/health``
    answers."""
    if not _port_free():
        require_or_skip("port 8000 (the README's server port) is in use")
    with open(log, "wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "axllm.serve", "--demo", "--log-level", "warning"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"the server exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            if httpx.get(f"{SERVER_URL}/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    _stop(proc)
    raise AssertionError(f"the server did not answer /health within {timeout} s: {log.read_text()[-2000:]}")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_block(line: int, code: str, env: dict[str, str], cwd: Path, timeout: float) -> float:
    """Runs one block in a fresh interpreter (starting the server first if it needs one); fails
    with the block's output if it exits non-zero. Returns the seconds it took."""
    server = _start_server(env, cwd / f"server-{line}.log", timeout) if needs_server(code) else None
    try:
        start = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-c", code], env=env, cwd=cwd, capture_output=True, text=True, timeout=timeout
        )
        took = time.monotonic() - start
    finally:
        if server is not None:
            _stop(server)
    assert r.returncode == 0, f"README block at line {line} failed:\n{r.stdout}\n{r.stderr}"
    assert r.stdout.strip(), f"README block at line {line} printed nothing"
    return took


@pytest.mark.parametrize(
    ("line", "code"), [pytest.param(line, code, id=f"line{line}") for line, code in readme_blocks()]
)
def test_block_runs_on_a_tiny_model(line, code, tiny_demo, tmp_path):
    env = {**os.environ, "AXLLM_DEMO_MODEL": str(tiny_demo), "AXLLM_CACHE": str(tmp_path / "cache")}
    run_block(line, code, env, tmp_path, timeout=120)
    assert not (tmp_path / "cache").exists(), "AXLLM_DEMO_MODEL must keep demo_model() from building"


@pytest.mark.real_model
def test_blocks_run_in_order_on_the_real_demo(real_gguf, tmp_path):
    """Every block, in order, on the real demo build (``axllm.demo_model()`` in the cache; built
    here first if absent, about a minute)."""
    real_gguf("qwen2.5-coder-0.5b-instruct-q4_k_m")
    env = {k: v for k, v in os.environ.items() if k != "AXLLM_DEMO_MODEL"}
    r = subprocess.run(
        [sys.executable, "-m", "axllm.zoo", "path", "demo"],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert r.returncode == 0, r.stderr
    times = [run_block(line, code, env, tmp_path, timeout=600) for line, code in readme_blocks()]
    print("README blocks on the real demo, seconds:", [round(t, 1) for t in times])
