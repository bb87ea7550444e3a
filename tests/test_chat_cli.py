"""``python -m axllm.chat``: a conversation through piped standard input, and the ``--demo`` main
command of the README."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import transformers  # noqa: F401
from helpers.tiny_models import TinyConfig, make_model, save_model  # noqa: E402
from helpers.tiny_tokenizer import write_tiny_tokenizer  # noqa: E402

from axllm.build import BuildOptions, build  # noqa: E402


def run_chat(args, stdin, timeout=600):
    return subprocess.run(
        [sys.executable, "-m", "axllm.chat", *args],
        input=stdin,
        text=True,
        capture_output=True,
        timeout=timeout,
    )


def test_two_turns_and_reset(tmp_path):
    hf = save_model(make_model(TinyConfig("qwen2", vocab_size=300, seed=3)), tmp_path / "hf")
    write_tiny_tokenizer(hf)
    out = build(hf, tmp_path / "b", BuildOptions(prefill_len=16, kv_cache_len=128, hidden_state_type="fp32"))
    r = run_chat(
        [str(out), "--temperature", "0", "--max-new-tokens", "6", "--system", "sys"],
        "hello\nsecond turn\n/reset\nthird\n",
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("[TTFT") == 3
    assert "[conversation reset]" in r.stderr
    assert "Traceback" not in r.stderr


def test_errors_print_one_line(tmp_path):
    r = run_chat([str(tmp_path / "missing")], "")
    assert r.returncode == 1
    assert r.stderr.startswith("error: ") and "does not exist" in r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.real_model
def test_demo_answers(real_gguf):
    real_gguf("qwen2.5-coder-0.5b-instruct-q4_k_m")
    r = run_chat(["--demo", "--temperature", "0"], "What is the capital of France?\n")
    assert r.returncode == 0, r.stderr[-2000:]
    assert "The capital of France is Paris." in r.stdout
    assert "[TTFT" in r.stdout


@pytest.mark.parametrize("module", ["axllm.chat", "axllm.inspect", "axllm.serve"])
def test_help_is_plain_text(module):
    r = subprocess.run([sys.executable, "-m", module, "--help"], text=True, capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert f"python -m {module} MODEL" in r.stdout
    assert "``" not in r.stdout, "reStructuredText quotes in --help"
    if module != "axllm.inspect":
        assert "--threads N" in r.stdout


def test_bad_threads_is_a_usage_error():
    r = run_chat(["m", "--threads", "0"], "")
    assert r.returncode == 2 and "--threads: must be an integer >= 1, got '0'" in r.stderr


def test_threads_refused_once_a_model_may_be_loaded(tmp_path, monkeypatch, capsys):
    """In-process, after ``axllm.LLM`` was imported (this test module builds models with it), the
    engine's thread count may already be fixed: --threads with another count is refused and
    AXLLM_NUM_THREADS is left alone; the count already in use is accepted."""
    import axllm.llm  # noqa: F401
    from axllm import _cli, chat

    monkeypatch.setenv("AXLLM_NUM_THREADS", "1")  # records the variable's state to restore
    monkeypatch.delenv("AXLLM_NUM_THREADS")
    current = _cli.host_threads()
    assert chat.main([str(tmp_path / "missing"), "--threads", str(current + 1)]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"error: --threads {current + 1}: this process may already have loaded a model")
    assert "AXLLM_NUM_THREADS" not in os.environ
    assert chat.main([str(tmp_path / "missing"), "--threads", str(current)]) == 1
    err = capsys.readouterr().err
    assert "--threads" not in err and "does not exist" in err
