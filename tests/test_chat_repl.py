"""``python -m axllm.chat`` driven through a pseudo-terminal: streaming turns, commands, Ctrl-C and
Ctrl-D, multi-line input, sessions saved and loaded across processes, persistent input history."""

from __future__ import annotations

import io
import os
import re
import sys
import time
from pathlib import Path

import pexpect
import pytest
from helpers.child_processes import default_signals

from axllm.progress import PrefillProgressLine

PROMPT = ">>> "
CONTINUATION = "... "
STATS = r"\[TTFT \d+ ms, prefill \d+ tok/s, decode [\d.]+ tok/s, \d+ tokens[^\]\r\n]*\]"


def tiny_chat_model(root: Path, cfg_args: dict, options: dict) -> Path:
    """A random Qwen2 with the byte-level test tokenizer, built for the host engine; skips the
    test where there is no pseudo-terminal to drive the REPL through (Windows)."""
    if sys.platform == "win32":
        pytest.skip("the REPL tests need a POSIX pseudo-terminal")
    from helpers.tiny_models import TinyConfig, make_model, save_model
    from helpers.tiny_tokenizer import write_tiny_tokenizer

    from axllm.build import BuildOptions, build

    hf = save_model(make_model(TinyConfig("qwen2", vocab_size=300, **cfg_args)), root / "hf")
    write_tiny_tokenizer(hf)
    return build(hf, root / "b", BuildOptions(**options))


@pytest.fixture(scope="module")
def fast(tmp_path_factory):
    """A tiny Qwen2 that answers in milliseconds."""
    return tiny_chat_model(
        tmp_path_factory.mktemp("fast"),
        {"seed": 3},
        {"prefill_len": 32, "kv_cache_len": 256, "hidden_state_type": "fp32"},
    )


@pytest.fixture(scope="module")
def slow(tmp_path_factory):
    """A Qwen2 slow enough (hidden 512, 6 layers) that a 400-token reply streams for seconds; its
    greedy reply to "tell me a long story" does not end before 400 tokens."""
    return tiny_chat_model(
        tmp_path_factory.mktemp("slow"),
        {
            "hidden_size": 512,
            "num_heads": 8,
            "num_kv_heads": 2,
            "head_dim": 64,
            "intermediate_size": 2048,
            "num_layers": 6,
            "seed": 5,
        },
        {"prefill_len": 32, "kv_cache_len": 512},
    )


class Repl:
    """One ``python -m axllm.chat`` process on a pseudo-terminal (greedy, 6 new tokens unless
    ``args`` say otherwise), its readline set up in ``tmp``, its input history under ``cache``
    (default ``tmp/cache``). Started with SIGINT at its default (Ctrl-C reaches it even when the
    tests run as a background job); ``live`` holds the processes the current test started."""

    live: list[pexpect.spawn] = []

    def __init__(self, model: Path, tmp: Path, *args: str, cache: Path | None = None, timeout: float = 20):
        cache = cache if cache is not None else tmp / "cache"
        inputrc = tmp / "inputrc"
        inputrc.write_text("set enable-bracketed-paste off\n")
        env = dict(os.environ, AXLLM_CACHE=str(cache), TERM="dumb", INPUTRC=str(inputrc))
        self.log = io.StringIO()
        self.child = pexpect.spawn(
            sys.executable,
            ["-m", "axllm.chat", str(model), "--temperature", "0", "--max-new-tokens", "6", *args],
            env=env,
            encoding="utf-8",
            codec_errors="replace",
            timeout=timeout,
            dimensions=(50, 250),
            preexec_fn=default_signals,
        )
        Repl.live.append(self.child)
        self.child.logfile_read = self.log
        self.child.expect_exact(PROMPT)
        self.banner = self.child.before

    def command(self, line: str) -> str:
        """Sends ``line``; returns what was printed before the next prompt (without the echo)."""
        self.child.sendline(line)
        self.child.expect_exact(PROMPT)
        echo, _, out = self.child.before.partition("\r\n")
        assert echo.endswith(line), echo
        return out

    def reply(self, line: str) -> tuple[str, str]:
        """Sends the message ``line``; returns the streamed reply and its statistics line."""
        self.child.sendline(line)
        self.child.expect_exact(line + "\r\n")
        self.child.expect(STATS)
        text = self.child.before
        assert text.endswith("\r\n"), text
        stats = self.child.after
        self.child.expect_exact(PROMPT)
        return text[:-2], stats

    def quit(self) -> int:
        """Ctrl-D at the prompt; returns the exit status."""
        self.child.sendeof()
        self.child.expect(pexpect.EOF)
        self.child.close()
        assert "Traceback" not in self.log.getvalue(), self.log.getvalue()
        return self.child.exitstatus


@pytest.fixture(autouse=True)
def no_repl_outlives_its_test():
    """Kills the REPL processes a test leaves running (a failed ``expect`` leaves its child up)."""
    yield
    while Repl.live:
        child = Repl.live.pop()
        if child.isalive():
            child.close(force=True)


def context_line(stats: str) -> list[str]:
    return [line for line in stats.splitlines() if line.startswith("context")]


def test_two_turns_template_and_history(fast, tmp_path):
    cache = tmp_path / "cache"
    r = Repl(fast, tmp_path)
    assert "loading [" in r.banner
    first, stats = r.reply("hello")
    assert stats.endswith("finish: length]")
    second, _ = r.reply("second turn")
    template = r.command("/template")
    assert template.endswith(
        f"<|im_start|>user\r\nhello<|im_end|>\r\n<|im_start|>assistant\r\n{first}<|im_end|>\r\n"
        f"<|im_start|>user\r\nsecond turn<|im_end|>\r\n<|im_start|>assistant\r\n{second}<|im_end|>\r\n"
    ), "the conversation, without a generation prompt after the last reply"
    assert r.quit() == 0
    history = cache / "chat_history"
    assert history.read_text().splitlines() == ["hello", "second turn", "/template"]
    assert history.stat().st_mode & 0o777 == 0o600

    again = Repl(fast, tmp_path)
    again.child.send("\x1b[A\x1b[A\x1b[A")
    again.child.sendline("")
    again.child.expect(STATS)
    again.child.expect_exact(PROMPT)
    assert "<|im_start|>user\r\nhello<|im_end|>" in again.command("/template")
    assert again.quit() == 0


def test_stats(fast, tmp_path):
    r = Repl(fast, tmp_path)
    before = r.command("/stats")
    assert before.startswith("last reply: none yet\r\n")
    r.reply("hello")
    out = r.command("/stats").replace("\r\n", "\n")
    assert "last reply: TTFT" in out and "6 tokens, finish: length\n" in out
    assert "prefill: " in out and "tok/s" in out
    assert "decode: " in out
    assert "prompt tokens: 0 cached, 24 prefilled\n" in out
    used = re.search(r"^context: (\d+)/256 tokens \(\d+%\)$", out, re.MULTILINE)
    assert used and 24 < int(used.group(1)) <= 30, out
    assert r.quit() == 0


def test_ctrl_c_cancels_the_reply(slow, tmp_path):
    r = Repl(slow, tmp_path, "--max-new-tokens", "400")
    r.child.sendline("tell me a long story")
    r.child.expect_exact("tell me a long story\r\n")
    r.child.read_nonblocking(1, timeout=15)
    time.sleep(0.1)
    r.child.sendintr()
    assert r.child.expect_exact(["[cancelled]", "[TTFT"]) == 0, "the reply ended before Ctrl-C"
    r.child.expect_exact(PROMPT)
    assert "tell me a long story" not in r.command("/template")
    stats = r.command("/stats")
    assert "finish: cancelled" in stats and "400 tokens" not in stats
    assert r.command("/set max_new_tokens=3") == "[max_new_tokens = 3]\r\n"
    _, stats = r.reply("hi")
    assert "3 tokens" in stats
    assert r.quit() == 0


def test_ctrl_c_at_the_prompt_clears_the_line(fast, tmp_path):
    r = Repl(fast, tmp_path)
    r.child.send("half typed")
    time.sleep(0.2)
    r.child.sendintr()
    r.child.expect_exact(PROMPT)
    assert r.command("/stats").startswith("last reply: none yet")
    assert r.quit() == 0


def test_set_parameters(fast, tmp_path):
    r = Repl(fast, tmp_path)
    assert r.command("/set temperature=0.8") == "[temperature = 0.8]\r\n"
    shown = r.command("/set")
    assert "temperature = 0.8\r\n" in shown and "max_new_tokens = 6\r\n" in shown
    assert r.command("/set temperature=") == "[temperature = default]\r\n"
    assert "temperature = " not in r.command("/set")
    assert r.command("/set top_k=5 temperature=default") == "[top_k = 5, temperature = default]\r\n"
    bad = r.command("/set bogus=1")
    assert bad.startswith("error: unknown option 'bogus'") and bad.count("\r\n") == 1
    bad = r.command("/set top_p=2")
    assert bad == "error: top_p must be in (0, 1], got 2\r\n"
    assert r.command("/set top_k=2.5") == "error: top_k must be an integer, got '2.5'\r\n"
    assert r.command("/set overflow=sideways").startswith("error: overflow must be one of")
    assert r.command("/set stop=\\n stop=END") == "[stop = ['\\n', 'END']]\r\n"
    assert "stop = ['\\n', 'END']\r\n" in r.command("/set")
    assert r.command("/set stop=") == "[stop = []]\r\n"
    assert r.command("/set seed=-1").startswith("error: seed must be")
    assert r.command("/set temperature").startswith("error: write temperature=VALUE")
    assert "top_k = 5\r\n" in r.command("/set")
    assert r.command("/set max_new_tokens=2") == "[max_new_tokens = 2]\r\n"
    _, stats = r.reply("hello")
    assert "2 tokens" in stats
    assert r.command("/set max_new_tokens=") == "[max_new_tokens = 6]\r\n"
    assert r.quit() == 0


def test_multiline_input(fast, tmp_path):
    r = Repl(fast, tmp_path)
    for line in ['"""', "line one", "/not a command", "  indented"]:
        r.child.sendline(line)
        r.child.expect_exact(CONTINUATION)
    r.child.sendline('"""')
    r.child.expect(STATS)
    r.child.expect_exact(PROMPT)
    r.child.sendline("first part\\")
    r.child.expect_exact(CONTINUATION)
    r.child.sendline("second part")
    r.child.expect(STATS)
    r.child.expect_exact(PROMPT)
    template = r.command("/template")
    assert "<|im_start|>user\r\nline one\r\n/not a command\r\n  indented<|im_end|>" in template
    assert "<|im_start|>user\r\nfirst part\r\nsecond part<|im_end|>" in template
    assert r.quit() == 0


def test_system_prompt_and_reset(fast, tmp_path):
    r = Repl(fast, tmp_path, "--system", "be brief")
    assert r.command("/template").startswith("<|im_start|>system\r\nbe brief<|im_end|>")
    r.reply("hello")
    assert r.command("/reset") == "[conversation reset]\r\n"
    r.child.sendline("/system you are\\")
    r.child.expect_exact(CONTINUATION)
    r.child.sendline("a poet")
    r.child.expect_exact("[system prompt set; new conversation]")
    r.child.expect_exact(PROMPT)
    assert r.command("/template") == "<|im_start|>system\r\nyou are\r\na poet<|im_end|>\r\n"
    r.reply("hello")
    assert r.command("/reset") == "[conversation reset]\r\n"
    assert "hello" not in r.command("/template")
    assert r.quit() == 0


def test_save_and_load_in_a_new_process(fast, tmp_path):
    path = tmp_path / "chat.axkv"
    r = Repl(fast, tmp_path, "--system", "be brief")
    first, _ = r.reply("hello")
    context = context_line(r.command("/stats"))
    assert r.command(f"/save {path}") == f"[saved 3 messages and the KV cache to {path}]\r\n"
    assert r.quit() == 0

    r = Repl(fast, tmp_path)
    missing = r.command(f"/load {tmp_path / 'missing'}")
    assert missing.startswith("error: ") and missing.count("\r\n") == 1
    assert r.command(f"/load {path}") == f"[loaded 3 messages from {path}]\r\n"
    assert context_line(r.command("/stats")) == context
    template = r.command("/template")
    assert template.startswith(
        "<|im_start|>system\r\nbe brief<|im_end|>\r\n<|im_start|>user\r\nhello<|im_end|>"
    )
    assert f"<|im_start|>assistant\r\n{first}<|im_end|>" in template
    r.reply("and then?")
    assert "and then?" in r.command("/template")
    assert r.quit() == 0


def test_save_errors_name_the_path_given(fast, tmp_path):
    r = Repl(fast, tmp_path)
    r.reply("hello")
    missing = tmp_path / "missing-dir" / "chat.axkv"
    assert r.command(f"/save {missing}") == (
        f"error: cannot save to {missing}: directory {missing.parent} does not exist\r\n"
    )
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    assert r.command(f"/save {blocker / 'chat.axkv'}") == (
        f"error: cannot save to {blocker / 'chat.axkv'}: directory {blocker} is not a directory\r\n"
    )
    occupied = tmp_path / "occupied"
    occupied.mkdir()
    out = r.command(f"/save {occupied}")
    assert out.startswith(f"error: cannot save to {occupied}: ") and ".tmp" not in out, out
    assert out.count("\r\n") == 1
    assert r.quit() == 0


def test_threads_set_the_host_engine_and_the_banner_shows_them(fast, tmp_path):
    """--threads N starts the host engine with N threads: the banner says so and the process runs
    N - 1 more threads than with --threads 1 (the engine's pool workers)."""
    counts = {}
    for n in (1, 3):
        r = Repl(fast, tmp_path, "--threads", str(n))
        assert f"host engine: {n} threads" in r.banner
        if sys.platform == "linux":
            counts[n] = len(os.listdir(f"/proc/{r.child.pid}/task"))
        r.reply("hello")
        assert r.quit() == 0
    if counts:
        assert counts[3] - counts[1] == 2, counts


def test_unknown_command_and_unwritable_history(fast, tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    r = Repl(fast, tmp_path, cache=blocker / "cache")
    out = r.command("/frobnicate now")
    assert out.startswith("warning: input history not saved (")
    unknown = (
        "error: unknown command /frobnicate (/help lists the commands; // starts a message with a slash)"
    )
    assert out.splitlines()[1:] == [unknown]
    assert r.command("/frobnicate") == unknown + "\r\n"
    help_text = r.command("/help")
    for name in (
        "/system",
        "/reset",
        "/set",
        "/stats",
        "/save",
        "/load",
        "/template",
        "/help",
        "/exit",
        "/quit",
    ):
        assert name in help_text
    assert "partial reply" in help_text
    r.child.sendline("/exit")
    r.child.expect(pexpect.EOF)
    r.child.close()
    assert r.child.exitstatus == 0
    log = r.log.getvalue()
    assert log.count("warning: input history not saved") == 1
    assert "Traceback" not in log


def test_ctrl_d_exits_0_and_slash_escape(fast, tmp_path):
    r = Repl(fast, tmp_path)
    r.reply("//etc/hosts")
    assert "<|im_start|>user\r\n/etc/hosts<|im_end|>" in r.command("/template")
    assert r.quit() == 0


def test_prefill_progress_shows_only_slow_prefills_and_erases_itself():
    err = io.StringIO()
    quick = PrefillProgressLine(err, delay_s=60)
    quick(16, 57)
    quick(57, 57)
    assert err.getvalue() == ""
    slow = PrefillProgressLine(err, delay_s=0)
    slow(16, 57)
    slow(32, 57)
    slow(57, 57)
    assert err.getvalue() == "\r[prefill 16/57 tokens]\r[prefill 32/57 tokens]\r\x1b[K"
    cut_short = PrefillProgressLine(err, delay_s=0)
    cut_short(16, 57)
    cut_short.clear()
    cut_short.clear()
    assert err.getvalue().endswith("\r[prefill 16/57 tokens]\r\x1b[K")
