"""The pyaxengine-shaped InferenceSession: surface, output selection, GIL release, thread safety,
and the native log sink."""

from __future__ import annotations

import logging
import re
import threading
import time

import ml_dtypes
import numpy as np
import pytest
import transformers  # noqa: F401
from helpers.contract import prefill_feed  # noqa: E402
from helpers.tiny_models import TinyConfig, make_model, save_model  # noqa: E402

import axllm  # noqa: E402
from axllm.build import BuildOptions, build  # noqa: E402


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    hf = save_model(
        make_model(TinyConfig("llama", num_layers=1, seed=8)), tmp_path_factory.mktemp("s") / "hf"
    )
    return build(
        hf, tmp_path_factory.mktemp("sb"), BuildOptions(prefill_len=8, kv_cache_len=16, last_kv_cache_len=[])
    )


@pytest.fixture(scope="module")
def heavy(tmp_path_factory):
    """One layer big enough that a P=128 prefill takes a noticeable time."""
    cfg = TinyConfig(
        "qwen2",
        hidden_size=1024,
        num_heads=16,
        num_kv_heads=4,
        head_dim=64,
        intermediate_size=4096,
        num_layers=1,
        vocab_size=64,
        seed=3,
    )
    hf = save_model(make_model(cfg), tmp_path_factory.mktemp("h") / "hf")
    return build(
        hf,
        tmp_path_factory.mktemp("hb"),
        BuildOptions(prefill_len=128, kv_cache_len=256, hidden_state_type="fp32", weight_type="fp32"),
    )


def test_surface(small):
    sess = axllm.InferenceSession(small / "llama_p8_l0_together.hostmodel")
    assert sess.num_groups == 2
    arg = sess.get_inputs()[0]
    assert isinstance(arg, axllm.NodeArg)
    assert (arg.name, arg.shape, arg.dtype) == ("K_cache", (1, 16, 64), np.dtype(ml_dtypes.bfloat16))
    assert arg.nbytes == 16 * 64 * 2
    assert [o.name for o in sess.get_outputs(shape_group=1)] == ["K_cache_out", "V_cache_out", "output"]
    assert sess.path.endswith("llama_p8_l0_together.hostmodel")


def test_output_selection_and_order(small):
    sess = axllm.InferenceSession(small / "llama_p8_l0_together.hostmodel")
    rng = np.random.default_rng(0)
    feed = prefill_feed(
        sess, 1, rng.standard_normal((4, 64)).astype(np.float32), None, None, 0, ml_dtypes.bfloat16, rng
    )
    k, v, y = sess.run(None, feed, shape_group=1)
    y2, k2 = sess.run(["output", "K_cache_out"], feed, shape_group=1)
    np.testing.assert_array_equal(y, y2)
    np.testing.assert_array_equal(k, k2)
    assert y.dtype == ml_dtypes.bfloat16 and y.shape == (1, 8, 64)
    assert sess.run([], feed, shape_group=1) == []


def test_gil_released_during_run(heavy):
    sess = axllm.InferenceSession(heavy / "qwen2_p128_l0_together.hostmodel")
    rng = np.random.default_rng(1)
    feed = prefill_feed(
        sess, 1, rng.standard_normal((128, 1024)).astype(np.float32), None, None, 0, np.float32, rng
    )
    sess.run(None, feed, shape_group=1)
    span = {}

    def work():
        span["start"] = time.perf_counter()
        sess.run(None, feed, shape_group=1)
        span["end"] = time.perf_counter()

    ticks = []
    t = threading.Thread(target=work)
    t.start()
    while t.is_alive():
        ticks.append(time.perf_counter())
    t.join()
    duration = span["end"] - span["start"]
    inside = [x for x in ticks if span["start"] + 0.005 < x < span["end"] - 0.005]
    assert duration > 0.02, f"the run took {duration * 1e3:.1f} ms: too short to judge"
    assert len(inside) > 100, f"only {len(inside)} ticks while the engine ran {duration * 1e3:.0f} ms"


def test_concurrent_runs_are_serialized_and_correct(small):
    sess = axllm.InferenceSession(small / "llama_p8_l0_together.hostmodel")
    rng = np.random.default_rng(2)
    feeds = [
        prefill_feed(
            sess, 1, rng.standard_normal((n, 64)).astype(np.float32), None, None, 0, ml_dtypes.bfloat16, rng
        )
        for n in range(1, 9)
    ]
    want = [sess.run(None, f, shape_group=1) for f in feeds]
    errors = []

    def worker(i):
        for _ in range(20):
            got = sess.run(None, feeds[i], shape_group=1)
            if not all(np.array_equal(a, b) for a, b in zip(got, want[i])):
                errors.append(i)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors


def test_native_logs_reach_python_logging(caplog):
    with caplog.at_level(logging.DEBUG, logger="axllm"):
        previous = axllm._core.get_log_level()
        axllm._core.set_log_level(10)
        try:
            axllm._core._log(30, "native warning 42")
            axllm._core._log(10, "native debug 43")
        finally:
            axllm._core.set_log_level(previous)
    messages = [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "axllm"]
    assert (30, "native warning 42") in messages
    assert (10, "native debug 43") in messages


def test_log_level_filters_in_native_code(caplog):
    with caplog.at_level(logging.DEBUG, logger="axllm"):
        previous = axllm._core.get_log_level()
        axllm._core.set_log_level(40)
        try:
            axllm._core._log(30, "dropped natively")
        finally:
            axllm._core.set_log_level(previous)
    assert not [r for r in caplog.records if "dropped natively" in r.getMessage()]


def _child_run(path, feed, conn):
    sess = axllm.InferenceSession(path)
    conn.send(sess.run(None, feed, shape_group=1))
    conn.close()


def test_engine_works_in_a_forked_child(small):
    """The engine's worker threads do not survive fork(); a child must still run (serially)."""
    import multiprocessing as mp

    path = small / "llama_p8_l0_together.hostmodel"
    sess = axllm.InferenceSession(path)
    rng = np.random.default_rng(4)
    feed = prefill_feed(
        sess, 1, rng.standard_normal((6, 64)).astype(np.float32), None, None, 0, ml_dtypes.bfloat16, rng
    )
    want = sess.run(None, feed, shape_group=1)
    ctx = mp.get_context("fork")
    parent, child = ctx.Pipe()
    p = ctx.Process(target=_child_run, args=(path, feed, child))
    p.start()
    assert parent.poll(60), "the forked child produced nothing within 60 s"
    got = parent.recv()
    p.join(30)
    assert p.exitcode == 0
    for a, b in zip(got, want):
        np.testing.assert_array_equal(a, b)


def test_close_and_context_manager(small):
    path = small / "llama_p8_l0_together.hostmodel"
    rng = np.random.default_rng(5)
    with axllm.InferenceSession(path) as sess:
        feed = prefill_feed(
            sess, 1, rng.standard_normal((3, 64)).astype(np.float32), None, None, 0, ml_dtypes.bfloat16, rng
        )
        want = sess.run(None, feed, shape_group=1)
        assert not sess.closed
    assert sess.closed
    message = re.escape(f"{path} is closed")
    after_close = {
        "run": lambda: sess.run(None, feed, shape_group=1),
        "get_inputs": lambda: sess.get_inputs(1),
        "get_outputs": lambda: sess.get_outputs(),
        "num_groups": lambda: sess.num_groups,
        "with": lambda: sess.__enter__(),
        # the native session refuses by itself, not only through the Python checks
        "_core.run": lambda: sess._session.run(1, list(feed.items()), []),
        "_core.group_io": lambda: sess._session.group_io(0),
        "_core.num_groups": lambda: sess._session.num_groups,
    }
    for name, call in after_close.items():
        with pytest.raises(axllm.ClosedError, match=message):
            call()
            pytest.fail(f"{name} after close did not raise")
    assert issubclass(axllm.ClosedError, axllm.AxllmError) and "ClosedError" in axllm.__all__
    sess.close()  # idempotent
    assert sess.path == str(path)

    reopened = axllm.InferenceSession(path)  # closing one session leaves the file usable
    for a, b in zip(reopened.run(None, feed, shape_group=1), want):
        np.testing.assert_array_equal(a, b)


def test_close_waits_for_a_run_in_progress(heavy):
    sess = axllm.InferenceSession(heavy / "qwen2_p128_l0_together.hostmodel")
    rng = np.random.default_rng(6)
    feed = prefill_feed(
        sess, 1, rng.standard_normal((128, 1024)).astype(np.float32), None, None, 0, np.float32, rng
    )
    want = sess.run(None, feed, shape_group=1)
    result = {}
    started = threading.Event()

    def work():
        started.set()
        result["out"] = sess.run(None, feed, shape_group=1)

    t = threading.Thread(target=work)
    t.start()
    started.wait()
    time.sleep(0.005)  # inside the run (which takes tens of ms), with the GIL released
    sess.close()
    t.join()
    assert sess.closed
    assert all(np.array_equal(a, b) for a, b in zip(result["out"], want)), "close freed buffers under a run"
    with pytest.raises(axllm.ClosedError):
        sess.run(None, feed, shape_group=1)
