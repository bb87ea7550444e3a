"""axllm.LLM on tiny models: streaming equals non-streaming, stop strings never leak, cancel from
another thread, the GIL stays free, model packages and overrides, and bad model directories."""

from __future__ import annotations

import json
import shutil
import threading
import time

import pytest
import torch  # noqa: F401
import transformers  # noqa: F401
from helpers.tiny_models import TinyConfig, make_model, save_model  # noqa: E402
from helpers.tiny_tokenizer import write_tiny_tokenizer  # noqa: E402

import axllm  # noqa: E402
from axllm._core import Sampler  # noqa: E402
from axllm.build import BuildOptions, build  # noqa: E402

OPTS = BuildOptions(
    prefill_len=8, kv_cache_len=96, last_kv_cache_len=[8, 16], hidden_state_type="fp32", weight_type="fp32"
)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    cfg = TinyConfig("qwen2", num_heads=4, num_kv_heads=2, vocab_size=300, seed=41)
    hf = save_model(make_model(cfg), tmp_path_factory.mktemp("api") / "hf")
    write_tiny_tokenizer(hf)
    return build(hf, tmp_path_factory.mktemp("apib"), OPTS)


@pytest.fixture(scope="module")
def llm(built):
    return axllm.LLM(built)


def test_stream_concatenates_to_completion(llm):
    whole = llm.generate("hello there", max_new_tokens=40, temperature=0)
    chunks = list(llm.generate("hello there", max_new_tokens=40, temperature=0, stream=True))
    assert "".join(c.text for c in chunks) == whole.text
    assert [t for c in chunks for t in c.token_ids] == whole.token_ids
    assert all(c.finish_reason is None for c in chunks[:-1])
    assert chunks[-1].finish_reason == whole.finish_reason == "length"
    assert chunks[-1].metrics.generated_tokens == 40
    assert whole.text == llm.detokenize(whole.token_ids)


def test_sampling_is_seeded(llm):
    a = llm.generate("abc", max_new_tokens=30, temperature=1.5, top_k=50, seed=7)
    b = llm.generate("abc", max_new_tokens=30, temperature=1.5, top_k=50, seed=7)
    c = llm.generate("abc", max_new_tokens=30, temperature=1.5, top_k=50, seed=8)
    assert a.token_ids == b.token_ids
    assert a.token_ids != c.token_ids


def test_stop_strings_never_leak(llm):
    full = llm.generate("xyz", max_new_tokens=60, temperature=0).text
    assert len(full) > 20
    for start, length in ((5, 3), (11, 6), (0, 1), (17, 2)):
        stop = full[start : start + length]
        cut = full.index(stop)
        chunks = list(
            llm.generate("xyz", max_new_tokens=60, temperature=0, stop=[stop, "\x00never"], stream=True)
        )
        text = "".join(c.text for c in chunks)
        assert text == full[:cut], (stop, text)
        assert chunks[-1].finish_reason == "stop" and chunks[-1].stop == stop
        done = llm.generate("xyz", max_new_tokens=60, temperature=0, stop=stop)
        assert done.text == full[:cut] and done.finish_reason == "stop"


def test_cancel_from_another_thread_within_one_step(llm):
    stream = llm.generate("cancel me", max_new_tokens=80, temperature=0, stream=True)
    seen = 0
    for chunk in stream:
        seen += len(chunk.token_ids)
        if chunk.finish_reason is not None:
            break
        if seen >= 5:
            t = threading.Thread(target=llm.stop)
            t.start()
            t.join()
            last = next(stream)
            assert last.finish_reason == "cancelled"
            assert last.token_ids == []
            break
    else:
        pytest.fail("the stream ended before it could be cancelled")
    assert llm.generate("after", max_new_tokens=3, temperature=0).finish_reason == "length"


def test_breaking_out_then_generating_again(llm):
    want = llm.generate("again", max_new_tokens=10, temperature=0).token_ids
    for i, _ in enumerate(llm.generate("other", max_new_tokens=50, temperature=0, stream=True)):
        if i == 3:
            break
    assert llm.generate("again", max_new_tokens=10, temperature=0).token_ids == want


def test_superseded_stream_finishes_cancelled(llm):
    first = llm.generate("one", max_new_tokens=30, temperature=0, stream=True)
    next(first)
    llm.generate("two", max_new_tokens=3, temperature=0)
    rest = list(first)
    assert rest[-1].finish_reason == "cancelled"


def test_chat_template_and_prompt_text(llm):
    messages = [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]
    text = llm.apply_chat_template(messages)
    assert (
        text
        == "<|im_start|>system\nbe brief<|im_end|>\n<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    )
    a = llm.chat(messages, max_new_tokens=8, temperature=0)
    b = llm.generate(llm.tokenize(text, add_special_tokens=False), max_new_tokens=8, temperature=0)
    assert a.token_ids == b.token_ids


def test_gil_is_free_while_generating(tmp_path_factory):
    cfg = TinyConfig(
        "llama",
        hidden_size=512,
        num_heads=8,
        num_kv_heads=2,
        head_dim=64,
        intermediate_size=2048,
        num_layers=4,
        vocab_size=300,
        seed=5,
    )
    hf = save_model(make_model(cfg), tmp_path_factory.mktemp("gil") / "hf")
    write_tiny_tokenizer(hf)
    out = build(
        hf,
        tmp_path_factory.mktemp("gilb"),
        BuildOptions(prefill_len=64, kv_cache_len=256, hidden_state_type="fp32", weight_type="fp32"),
    )
    lm = axllm.LLM(out)
    ticks = []
    span = {}

    def work():  # generations until 0.3 s have passed, whatever the machine's speed
        span["t0"] = time.perf_counter()
        while time.perf_counter() - span["t0"] < 0.3:
            lm.generate(list(range(1, 60)), max_new_tokens=30, temperature=0)
        span["t1"] = time.perf_counter()

    t = threading.Thread(target=work)
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
        time.sleep(0.0005)
    t.join()
    duration = span["t1"] - span["t0"]
    inside = [x for x in ticks if span["t0"] < x < span["t1"]]
    assert duration > 0.05
    assert len(inside) > duration / 0.0005 * 0.3, (len(inside), duration)


def test_bad_arguments(llm):
    with pytest.raises(ValueError, match="max_new_tokens"):
        llm.generate("x", max_new_tokens=0)
    with pytest.raises(ValueError, match="outside the vocabulary"):
        llm.generate([1, 2, 100000])
    with pytest.raises(TypeError, match="prompt"):
        llm.generate(3.5)
    with pytest.raises(ValueError, match="top_p"):
        llm.generate("x", top_p=1.5)
    with pytest.raises(ValueError, match="empty"):
        llm.generate([])


def _copy(built, tmp_path):
    d = tmp_path / "m"
    shutil.copytree(built, d)
    return d


def test_missing_layer(built, tmp_path):
    d = _copy(built, tmp_path)
    (d / "qwen2_p8_l1_together.hostmodel").unlink()
    with pytest.raises(
        axllm.ModelLoadError, match="qwen2_p8_l1_together.hostmodel: layer model file not found"
    ):
        axllm.LLM(d)


def test_wrong_embedding_size(built, tmp_path):
    d = _copy(built, tmp_path)
    emb = d / "model.embed_tokens.weight.bfloat16.bin"
    emb.write_bytes(emb.read_bytes()[:-128])
    with pytest.raises(axllm.ModelLoadError, match="model.embed_tokens.weight.bfloat16.bin"):
        axllm.LLM(d)
    with pytest.raises(axllm.ModelLoadError, match="tokens_embed_size 32 does not match"):
        axllm.LLM(built, overrides={"tokens_embed_size": 32})
    with pytest.raises(axllm.ModelLoadError, match="tokens_embed_num 299"):
        axllm.LLM(built, overrides={"tokens_embed_num": 299})


def test_missing_tokenizer(built, tmp_path):
    d = _copy(built, tmp_path)
    (d / "tokenizer.json").unlink()
    with pytest.raises(axllm.ModelLoadError, match="tokenizer.json"):
        axllm.LLM(d)


def test_vocab_mismatch(built, tmp_path):
    from tokenizers import Tokenizer

    d = _copy(built, tmp_path)
    tok = Tokenizer.from_file(str(d / "tokenizer.json"))
    tok.add_special_tokens([f"<extra_{i}>" for i in range(60)])
    tok.save(str(d / "tokenizer.json"))
    with pytest.raises(axllm.ModelLoadError, match="tokenizer.json: the tokenizer has 319 tokens"):
        axllm.LLM(d)


def test_embedding_rows_must_match_post_vocab(built, tmp_path):
    d = _copy(built, tmp_path)
    config = json.loads((d / "config.json").read_text())
    del config["axllm_build"]
    (d / "config.json").write_text(json.dumps(config))
    emb = d / "model.embed_tokens.weight.bfloat16.bin"
    emb.write_bytes(emb.read_bytes() + bytes(64 * 2 * 4))
    with pytest.raises(axllm.ModelLoadError, match="has 304 rows but the post model"):
        axllm.LLM(d)


def test_axera_model_package_layout(built, tmp_path, llm):
    """An axmodel subdirectory, a tokenizer subdirectory, post_config.json and ax-llm's config.json."""
    pkg = tmp_path / "Qwen-tiny-ax650"
    models = pkg / "qwen-tiny-ax650"
    tok = pkg / "qwen_tokenizer"
    models.mkdir(parents=True)
    tok.mkdir()
    for f in built.iterdir():
        if f.suffix == ".hostmodel" or f.name.endswith(".bin"):
            shutil.copy(f, models / f.name)
        elif f.name.startswith(("tokenizer", "generation")):
            shutil.copy(f, tok / f.name)
    (pkg / "post_config.json").write_text(
        json.dumps(
            {
                "enable_temperature": True,
                "temperature": 0.9,
                "enable_repetition_penalty": False,
                "repetition_penalty": 1.2,
                "penalty_window": 20,
                "enable_top_p_sampling": False,
                "top_p": 0.8,
                "enable_top_k_sampling": True,
                "top_k": 1,
            }
        )
    )
    lm = axllm.LLM(pkg)
    assert lm.geometry["n_layers"] == 2
    want = llm.generate("pkg", max_new_tokens=12, temperature=0).token_ids
    assert lm.generate("pkg", max_new_tokens=12).token_ids == want, "post_config top_k=1 is greedy"
    (pkg / "config.json").write_text(
        json.dumps(
            {
                "template_filename_axmodel": "qwen-tiny-ax650/qwen2_p8_l%d_together.hostmodel",
                "axmodel_num": 2,
                "filename_post_axmodel": "qwen-tiny-ax650/qwen2_post.hostmodel",
                "filename_tokens_embed": "qwen-tiny-ax650/model.embed_tokens.weight.bfloat16.bin",
                "tokens_embed_num": 300,
                "tokens_embed_size": 64,
            }
        )
    )
    assert axllm.LLM(pkg).files["layers"][1].endswith("qwen-tiny-ax650/qwen2_p8_l1_together.hostmodel")
    (pkg / "config.json").write_text(json.dumps({"axmodel_num": 3}))
    with pytest.raises(
        axllm.ModelLoadError, match="qwen2_p8_l2_together.hostmodel: layer model file not found"
    ):
        axllm.LLM(pkg)


def test_axmodel_files_need_an_npu_backend(built, tmp_path):
    d = _copy(built, tmp_path)
    (d / "config.json").unlink()
    for f in list(d.glob("*.hostmodel")):
        f.rename(f.with_suffix(".axmodel"))
    with pytest.raises(axllm.ModelLoadError, match="need an AXERA NPU backend"):
        axllm.LLM(d)


def test_sampling_defaults_from_generation_config(built, tmp_path):
    d = _copy(built, tmp_path)
    gen = json.loads((d / "generation_config.json").read_text())
    assert axllm.LLM(d).default_sampling == Sampler(mode="hf", temperature=0.0).params
    gen.update({"do_sample": True, "temperature": 0.7, "top_p": 0.8, "repetition_penalty": 1.05})
    (d / "generation_config.json").write_text(json.dumps(gen))
    lm = axllm.LLM(d)
    assert (
        lm.default_sampling
        == Sampler(mode="hf", temperature=0.7, top_k=50, top_p=0.8, repetition_penalty=1.05).params
    )
    a = lm.generate("abc", max_new_tokens=20, seed=3)
    b = lm.generate(
        "abc", max_new_tokens=20, temperature=0.7, top_k=50, top_p=0.8, repetition_penalty=1.05, seed=3
    )
    assert a.token_ids == b.token_ids
    gen["do_sample"] = False
    (d / "generation_config.json").write_text(json.dumps(gen))
    assert (
        axllm.LLM(d).default_sampling == Sampler(mode="hf", temperature=0.0, repetition_penalty=1.05).params
    )


def test_huge_max_new_tokens_is_capped_not_a_crash(llm):
    out = llm.generate("x", max_new_tokens=2**40, temperature=0)
    assert out.finish_reason in ("context_full", "stop")
    with pytest.raises(TypeError, match="max_new_tokens"):
        llm.generate("x", max_new_tokens=2.5)


def test_close_frees_the_model_and_later_calls_raise_closed_error(built):
    with axllm.LLM(built) as lm:
        want = lm.generate("hello", max_new_tokens=5, temperature=0).token_ids
        stream = lm.generate("hello", max_new_tokens=50, temperature=0, stream=True)
        next(stream)
    assert lm.closed
    with pytest.raises(axllm.ClosedError, match="is closed"):
        lm.generate("hello", max_new_tokens=5)
    with pytest.raises(axllm.ClosedError, match="is closed"):
        list(stream)  # a stream left open when its model closed
    for call in (lm.reset, lambda: lm.cached_tokens, lm.snapshot, lambda: lm.rewind(0)):
        with pytest.raises(axllm.ClosedError):
            call()
    lm.close()  # idempotent
    assert lm.geometry["n_layers"] == 2 and lm.tokenize("hello")  # static facts stay readable
    assert axllm.LLM(built).generate("hello", max_new_tokens=5, temperature=0).token_ids == want


def test_close_from_another_thread_ends_a_running_generation(built):
    lm = axllm.LLM(built)
    stream = lm.generate("a long one", max_new_tokens=80, temperature=0, stream=True)
    first = next(stream)
    closer = threading.Thread(target=lm.close)
    closer.start()
    closer.join(30)
    assert not closer.is_alive() and lm.closed
    rest = []
    with pytest.raises(axllm.ClosedError):
        rest.extend(stream)
    assert first.finish_reason is None


def test_the_core_refuses_concurrent_calls_and_the_llm_orders_them(built):
    """axllm._core.LLM raises BusyError for a call made while another thread runs one; axllm.LLM's
    calls from other threads wait for the step under way instead."""
    lm = axllm.LLM(built)
    core = lm._core
    busy: list[str] = []
    # A thread runs whole generations in C++ (run_steps: the model's mutex is held for every step,
    # released only between them); the main thread calls the core until one call collides.
    for _ in range(50):
        gen = core.generate(list(range(3, 90)), axllm.GenerationConfig(max_new_tokens=200, temperature=0))
        runner = threading.Thread(target=gen.run_steps, args=(1000,))
        runner.start()
        try:
            while runner.is_alive() and not busy:
                try:
                    assert core.kv_size >= 0
                except axllm.BusyError as e:
                    busy.append(str(e))
        finally:
            runner.join()
        if busy:
            break
    assert busy and "another thread" in busy[0]
    # Through axllm.LLM the same pattern never fails: reads wait for the step under way.
    errors, reads = [], []

    def reader():
        try:
            while not stop2.is_set():
                reads.append(lm.context_usage.used)
        except Exception as e:
            errors.append(e)

    stop2 = threading.Event()
    r = threading.Thread(target=reader)
    r.start()
    try:
        out = lm.generate(list(range(3, 90)), max_new_tokens=100, temperature=0)
    finally:
        stop2.set()
        r.join()
    assert not errors and reads and out.finish_reason in ("length", "context_full")


def test_prefill_is_pulled_a_chunk_per_step(built):
    lm = axllm.LLM(built)
    gen = lm._core.generate(
        list(range(3, 23)), axllm.GenerationConfig(max_new_tokens=2, temperature=0), reuse_kv=False
    )
    steps = list(gen)
    # 20 prompt tokens, P = 8: two progress steps, then the step ending the prefill samples a token.
    assert [(s.token >= 0, s.finish_reason, s.prefill_done, s.prefill_total) for s in steps] == [
        (False, None, 8, 20),
        (False, None, 16, 20),
        (True, None, 20, 20),
        (True, "length", 0, 0),
    ]
    assert lm._core.kv_size == 21
