"""Greedy generation through the C++ runtime equals transformers' generate on tiny random Qwen2
and Llama models built -t fp32 -w fp32: prompts shorter than P, exactly P and longer than P, on
2-group builds (the remainder goes through decode steps), history-group builds (chunked
prefill) and default builds (groups at every multiple of P: the whole context in chunks), with
several EOS ids."""

from __future__ import annotations

import json
import logging

import pytest
import torch
import transformers  # noqa: F401
from helpers.tiny_models import TinyConfig, make_model, save_model  # noqa: E402
from helpers.tiny_tokenizer import write_tiny_tokenizer  # noqa: E402

import axllm  # noqa: E402
from axllm.build import BuildOptions, build, default_history_lens  # noqa: E402

P = 8
MODELS = [
    TinyConfig("qwen2", num_heads=4, num_kv_heads=2, vocab_size=300, seed=31),
    TinyConfig("llama", num_heads=4, num_kv_heads=1, vocab_size=300, tie=True, seed=32),
]
C = 64
BUILDS = {"2-group": [], "ctx": [8, 16, 32], "default": None}


def history_lens(kind):
    groups = BUILDS[kind]
    return default_history_lens(P, C) if groups is None else groups


@pytest.fixture(scope="module", params=MODELS, ids=lambda c: c.id)
def hf(request, tmp_path_factory):
    cfg = request.param
    model = make_model(cfg)
    path = save_model(model, tmp_path_factory.mktemp(cfg.id) / "hf")
    write_tiny_tokenizer(path)
    return cfg, model, path


@pytest.fixture(scope="module", params=list(BUILDS), ids=str)
def llm(request, hf, tmp_path_factory):
    cfg, model, path = hf
    out = build(
        path,
        tmp_path_factory.mktemp(f"{cfg.id}-{request.param}"),
        BuildOptions(
            prefill_len=P,
            kv_cache_len=C,
            last_kv_cache_len=BUILDS[request.param],
            hidden_state_type="fp32",
            weight_type="fp32",
        ),
    )
    return cfg, model, axllm.LLM(out), request.param


def hf_greedy(model, prompt, n, eos=None):
    with torch.no_grad():
        out = model.generate(
            torch.tensor([prompt]),
            max_new_tokens=n,
            do_sample=False,
            eos_token_id=eos,
            pad_token_id=0,
            attention_mask=torch.ones(1, len(prompt)),
        )
    return out[0, len(prompt) :].tolist()


@pytest.mark.parametrize("n_prompt", [3, P, P + 1, 21, 2 * P])
def test_greedy_matches_transformers(llm, n_prompt):
    cfg, model, lm, kind = llm
    prompt = [(7 * i + 3) % 256 for i in range(n_prompt)]
    want = hf_greedy(model, prompt, 12, eos=[10**6])
    got = lm.generate(prompt, max_new_tokens=12, temperature=0)
    assert got.token_ids == want, f"{cfg.id} {kind} prompt {n_prompt}"
    assert got.finish_reason == "length"
    assert got.metrics.prompt_tokens == n_prompt and got.metrics.generated_tokens == 12


def test_several_eos_ids_stop_generation(llm):
    cfg, model, lm, kind = llm
    for seed in range(20):
        prompt = [(seed * 37 + 11 * i) % 256 for i in range(5)]
        free = hf_greedy(model, prompt, 24, eos=[10**6])
        fresh = [i for i in range(2, len(free)) if free[i] not in free[:i]]
        if fresh:
            break
    else:
        pytest.fail("no prompt gave a greedy path with a token new after position 2")
    stop_at = fresh[0]
    eos_ids = [299, free[stop_at]] if free[stop_at] != 299 else [298, 299]
    want = hf_greedy(model, prompt, 24, eos=eos_ids)
    assert want[-1] == free[stop_at]
    saved = lm.eos_token_ids
    lm.eos_token_ids = eos_ids
    try:
        got = lm.generate(prompt, max_new_tokens=24, temperature=0)
    finally:
        lm.eos_token_ids = saved
    assert got.finish_reason == "stop"
    assert got.token_ids == want[:-1], "EOS is not returned as a token"


def test_context_full(llm):
    cfg, model, lm, kind = llm
    prompt = list(range(1, 61))
    got = lm.generate(prompt, max_new_tokens=50, temperature=0)
    assert got.finish_reason == "context_full"
    assert len(got.token_ids) == 64 - 60 + 1
    with pytest.raises(axllm.ContextOverflowError) as e:
        lm.generate(list(range(1, 66)), max_new_tokens=2, temperature=0)
    assert (e.value.needed, e.value.available) == (65, 64)


def test_geometry_from_io_info(llm):
    cfg, model, lm, kind = llm
    g = lm.geometry
    assert (g["kv_len"], g["prefill_len"], g["hidden"]) == (64, P, cfg.hidden_size)
    assert g["kv_dim"] == cfg.num_kv_heads * cfg.head_dim
    assert g["history_capacity"] == [64, 0] + history_lens(kind)
    recorded = json.loads((lm.path / "config.json").read_text())["axllm_build"]
    assert recorded["kv_cache_len"] == 64 and recorded["last_kv_cache_len"] == history_lens(kind)


def test_default_groups_prefill_the_whole_context_in_chunks(llm, caplog):
    """A prompt of C - P/2 tokens (C - 64 at P=128; its last chunk needs the largest group): the
    default build prefills it in P-chunks (no decode-step warning); builds lacking a group fall
    back to decode steps from the first history no group holds and warn once per model, naming
    the build flag and that history. Every output equals transformers."""
    cfg, model, lm, kind = llm
    fresh = axllm.LLM(lm.path)  # the warning is logged once per model
    prompt = [(7 * i + 3) % 256 for i in range(C - P // 2)]
    want = hf_greedy(model, prompt, 4, eos=[10**6])
    with caplog.at_level(logging.WARNING, logger="axllm"):
        for _ in range(2):
            fresh.reset()
            assert fresh.generate(prompt, max_new_tokens=4, temperature=0).token_ids == want
    warnings = [r.getMessage() for r in caplog.records if r.name == "axllm"]
    if kind == "default":
        assert warnings == []
        return
    assert len(warnings) == 1, warnings
    lacking = (max(history_lens(kind), default=0) // P + 1) * P
    assert f"history of {lacking} tokens or more" in warnings[0]
    assert f"--last_kv_cache_len at every multiple of {P} from {lacking} to" in warnings[0]
