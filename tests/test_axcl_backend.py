"""The AXCL backend through the test-only stand-in of libaxcl_rt.so (same symbols; emulated cards
whose device memory is host memory tagged with its card; contexts bound per thread; each
.axmodel runs on the host engine; every call goes to a ledger with its thread and whether that
thread held a context for the right card): greedy generation on 1 and 2 cards equals the CPU
backend token for token; device memory is freed exactly once at close, at exit and on SIGTERM or SIGINT; no
AXCL call comes from a thread without its card's context; K/V rows never cross the host during
decode; nothing is allocated per token; missing libraries, missing symbols and failing calls
raise typed errors naming them. Each scenario runs in its own process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter, defaultdict

import pytest
import transformers  # noqa: F401
from helpers.child_processes import signalled_child  # noqa: E402
from helpers.standin_models import (  # noqa: E402
    check_session_close_counts,
    host_and_npu_models,
    ledger_counter,
    llm_close_code,
    run_python,
    session_close_code,
    session_parity_code,
)
from helpers.tiny_models import TinyConfig  # noqa: E402

# Ledger events counted around close: allocations, frees, model loads, model unloads.
LEDGER_EVENTS = ("axclrtMalloc ", "axclrtFree ", "model ", "axclrtEngineUnload")
PROMPT = [(7 * i + 3) % 250 for i in range(19)]
FIRST_ID = 129  # the stand-in's first device id (cards report bus numbers, not ordinals)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A host build and the same model as ".axmodel" stand-in files."""
    return host_and_npu_models(
        tmp_path_factory.mktemp("axcl"),
        TinyConfig("llama", num_heads=4, num_kv_heads=2, num_layers=3, vocab_size=300, seed=71),
    )


def run_py(code: str, env_extra: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return run_python(code, env_extra, timeout)


def axcl_env(cpp_build, ledger=None, **extra):
    env = {"AXLLM_AXCL_LIB_DIR": str(cpp_build / "axcl_standin")}
    if ledger is not None:
        env["AXLLM_STANDIN_LEDGER"] = str(ledger)
    env.update(extra)
    return env


def parse(ledger):
    """Ledger lines as (name, {field: value}, tid)."""
    out = []
    for line in ledger.read_text().splitlines() if ledger.exists() else []:
        event, tid = line.rsplit(" tid=", 1)
        parts = event.split()
        fields = dict(p.split("=", 1) for p in parts[1:] if "=" in p)
        out.append((parts[0], fields, tid, parts[1:]))
    return out


def greedy_code(model_dir, backend, n=20, devices=None):
    dev = f", devices={devices!r}" if devices is not None else ""
    return f"""
import json, axllm
llm = axllm.LLM({str(model_dir)!r}, backend={backend!r}{dev})
out = llm.generate({PROMPT!r}, max_new_tokens={n}, temperature=0)
print(json.dumps({{"ids": out.token_ids, "backend": llm.backend, "geometry": llm._core.geometry}}))
"""


@pytest.mark.parametrize("cards", [1, 2])
def test_greedy_through_axcl_equals_host(models, cpp_build, tmp_path, cards):
    host, npu = models
    ledger = tmp_path / "ledger.txt"
    cpu = run_py(greedy_code(host, "host"), {})
    if cards == 1:  # "auto" picks AXCL when the library loads and lists a card; AXLLM_DEVICES picks it
        r = run_py(greedy_code(npu, "auto"), axcl_env(cpp_build, ledger, AXLLM_DEVICES="1"))
    else:
        r = run_py(greedy_code(npu, "axcl", devices=[0, 1]), axcl_env(cpp_build, ledger))
    assert cpu.returncode == 0, cpu.stderr
    assert r.returncode == 0, r.stderr
    a, b = json.loads(cpu.stdout), json.loads(r.stdout)
    assert b["backend"] == "axcl"
    assert a["ids"] == b["ids"] and len(a["ids"]) == 20

    events = parse(ledger)
    names = [e[0] for e in events]
    assert names.count("axclInit") == 1 and names.count("axclFinalize") == 1
    assert not any(n.endswith("-invalid") or n.endswith("-failed") for n in names), [
        e for e in events if e[0].endswith(("-invalid", "-failed"))
    ]

    # Contexts: every device call made with a current context for its card, each card's calls
    # from one thread (its worker), never from the thread that initialised AXCL.
    init_tid = events[names.index("axclInit")][2]
    assert all(f.get("ctx") in ("ok", "n/a") for _, f, _, _ in events), [
        e for e in events if e[1].get("ctx") not in ("ok", "n/a")
    ][:5]
    tids = defaultdict(set)
    for _n, f, tid, _ in events:
        if f.get("ctx") == "ok":
            tids[f["dev"]].add(tid)
    expected = {str(FIRST_ID + 1)} if cards == 1 else {str(FIRST_ID), str(FIRST_ID + 1)}
    assert set(tids) == expected
    assert all(len(t) == 1 for t in tids.values()), tids
    assert init_tid not in set().union(*tids.values())
    if cards == 2:
        assert tids[str(FIRST_ID)] != tids[str(FIRST_ID + 1)]

    # Placement: 3 layers on 2 cards -> layers 0,1 on the first card, layer 2 and post on the last.
    loads = {e[3][-1].rsplit("/", 1)[-1]: e[1]["dev"] for e in events if e[0] == "model"}
    if cards == 2:
        assert [loads[f"llama_p8_l{i}_together.axmodel"] for i in range(3)] == [
            str(FIRST_ID),
            str(FIRST_ID),
            str(FIRST_ID + 1),
        ]
        assert loads["llama_post.axmodel"] == str(FIRST_ID + 1)
        runs = Counter(e[1]["dev"] for e in events if e[0] == "axclrtEngineExecute")
        assert runs[str(FIRST_ID)] > 0 and runs[str(FIRST_ID + 1)] > 0
    else:
        assert set(loads.values()) == {str(FIRST_ID + 1)}

    # Device memory: every block freed exactly once (at exit here), before axclFinalize.
    allocs = Counter(f["ptr"] for n, f, _, _ in events if n == "axclrtMalloc")
    frees = Counter(f["ptr"] for n, f, _, _ in events if n == "axclrtFree")
    assert allocs and all(v == 1 for v in allocs.values())
    assert frees == allocs
    fin = names.index("axclFinalize")
    assert events[fin][1]["live"] == "0"
    assert max(i for i, n in enumerate(names) if n == "axclrtFree") < fin

    # Decode: no allocation, and no K/V-sized host<->device copy (rows are written in place).
    g = b["geometry"]
    esz = 2 if g["io_dtype"] in ("bf16", "fp16") else 4
    row = g["kv_dim"] * esz
    rows = max([g["kv_len"], *g["history_capacity"]]) + g["prefill_len"]
    kv_sizes = {row, g["kv_len"] * row, rows * row, g["prefill_len"] * row}
    first_decode = next(
        i for i, (n, f, _, _) in enumerate(events) if n == "axclrtEngineExecute" and f["g"] == "0"
    )
    decode = events[first_decode:fin]
    assert not any(n == "axclrtMalloc" for n, _, _, _ in decode), "allocation per token"
    copies = [(f["kind"], int(f["size"])) for n, f, _, _ in decode if n == "axclrtMemcpy"]
    assert copies
    bad = [c for c in copies if c[0] in ("H2D", "D2H") and c[1] in kv_sizes]
    assert not bad, f"K/V-sized blocks through the host during decode: {bad[:5]}"
    if cards == 2:
        # The hidden state crosses to the second card once per step, through the host (D2H then
        # H2D of one hidden row); masks and indices are written to each card, never staged.
        steps = sum(1 for n, f, _, _ in decode if n == "axclrtEngineExecute" and f["g"] == "0") // 4
        hidden_d2h = sum(1 for k, s in copies if k == "D2H" and s == g["hidden"] * esz)
        assert steps == 19 and hidden_d2h == steps, (steps, hidden_d2h)
        mask_d2h = [s for k, s in copies if k == "D2H" and s == (g["kv_len"] + 1) * esz]
        assert not mask_d2h, "the decode mask went through the host"


def test_close_frees_every_buffer_once(models, cpp_build, tmp_path):
    host, npu = models
    ledger = tmp_path / "ledger.txt"
    code = (
        greedy_code(npu, "axcl", 3, devices=[0, 1])
        + f"""
import gc
del llm, out
gc.collect()
lines = open({str(ledger)!r}).read().splitlines()
mallocs = sum(l.startswith("axclrtMalloc ") for l in lines)
print(json.dumps([mallocs, sum(l.startswith("axclrtFree ") for l in lines)]))
"""
    )
    r = run_py(code, axcl_env(cpp_build, ledger))
    assert r.returncode == 0, r.stderr
    n_alloc, n_free_at_close = json.loads(r.stdout.splitlines()[-1])
    assert n_alloc > 0 and n_free_at_close == n_alloc, "closing the LLM frees its device memory, before exit"
    events = parse(ledger)
    allocs = sorted(f["ptr"] for n, f, _, _ in events if n == "axclrtMalloc")
    frees = sorted(f["ptr"] for n, f, _, _ in events if n == "axclrtFree")
    assert allocs == frees, "and exit frees nothing twice"
    loads = [e for e in events if e[0] == "model"]
    unloads = [e for e in events if e[0] == "axclrtEngineUnload"]
    assert len(loads) == len(unloads) == 4
    assert all(f.get("ctx") in ("ok", "n/a") for _, f, _, _ in events)


def test_llm_close_frees_every_buffer_once(models, cpp_build, tmp_path):
    """LLM.close() on two cards frees every device block and unloads every model at once, each on
    its card's context; the LLM refuses use after it; exit frees nothing twice."""
    host, npu = models
    ledger = tmp_path / "ledger.txt"
    code = (
        greedy_code(npu, "axcl", 3, devices=[0, 1])
        + ledger_counter(ledger, LEDGER_EVENTS)
        + llm_close_code(PROMPT)
    )
    r = run_py(code, axcl_env(cpp_build, ledger))
    assert r.returncode == 0, r.stderr
    n_alloc, n_free, n_load, n_unload = json.loads(r.stdout.splitlines()[-1])
    assert n_alloc > 0 and n_free == n_alloc, "LLM.close() frees its device memory, before exit"
    assert n_load == n_unload == 4, "and unloads its models"
    events = parse(ledger)
    allocs = Counter(f["ptr"] for n, f, _, _ in events if n == "axclrtMalloc")
    assert Counter(f["ptr"] for n, f, _, _ in events if n == "axclrtFree") == allocs, (
        "exit frees nothing twice"
    )
    assert all(f.get("ctx") in ("ok", "n/a") for _, f, _, _ in events)


def test_inference_session_close_frees_its_memory(models, cpp_build, tmp_path):
    """InferenceSession.close() (and leaving ``with``) frees the session's device memory and
    unloads its model at once; the session refuses use after it; exit frees nothing twice."""
    host, npu = models
    ledger = tmp_path / "ledger.txt"
    code = session_close_code(npu / "llama_p8_l0_together.axmodel", ledger, LEDGER_EVENTS)
    r = run_py(code, axcl_env(cpp_build, ledger))
    assert r.returncode == 0, r.stderr
    check_session_close_counts(r.stdout)
    events = parse(ledger)
    # The second session may get the addresses the first one freed: count per address.
    allocs = Counter(f["ptr"] for n, f, _, _ in events if n == "axclrtMalloc")
    frees = Counter(f["ptr"] for n, f, _, _ in events if n == "axclrtFree")
    assert allocs and frees == allocs, "exit frees nothing twice"
    assert all(f.get("ctx") in ("ok", "n/a") for _, f, _, _ in events)
    assert not any(n.endswith("-invalid") for n, _, _, _ in events)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_frees_device_memory(models, cpp_build, tmp_path, sig):
    """A killed process frees the device memory of its LLM (on two cards) and of an open
    InferenceSession: on SIGTERM from the signal handler (best effort, see
    csrc/src/util/vendor_blocks.h), on SIGINT through KeyboardInterrupt and interpreter exit."""
    host, npu = models
    ledger = tmp_path / "ledger.txt"
    code = f"""
import axllm, numpy as np
llm = axllm.LLM({str(npu)!r}, backend="axcl", devices=[0, 1])
s = axllm.InferenceSession({str(npu / "llama_p8_l0_together.axmodel")!r})
s.run(None, {{i.name: np.ones(i.shape, i.dtype) for i in s.get_inputs(1)}}, shape_group=1)
print("READY", flush=True)
while True:
    llm.generate({PROMPT!r}, max_new_tokens=40, temperature=1.0, seed=1)
"""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AXLLM_AX", "AXLLM_STANDIN"))}
    env.update(axcl_env(cpp_build, ledger))
    with signalled_child(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as p:
        assert p.stdout.readline().strip() == "READY", p.stderr.read()
        time.sleep(0.5)
        p.send_signal(sig)
        p.wait(30)
        assert p.returncode == -sig, p.stderr.read()
    events = parse(ledger)
    allocs = Counter(f["ptr"] for n, f, _, _ in events if n == "axclrtMalloc")
    frees = Counter(f["ptr"] for n, f, _, _ in events if n == "axclrtFree")
    assert allocs and frees == allocs, f"{sig.name} must free every device block exactly once"
    assert all(f.get("ctx") in ("ok", "n/a") for _, f, _, _ in events), (
        "frees on the signal take the card's context"
    )
    assert any(e[0] == "axclrtEngineExecute" for e in events)


def test_missing_library(models, tmp_path):
    host, npu = models
    r = run_py(greedy_code(npu, "axcl", 1), {"AXLLM_AXCL_LIB_DIR": str(tmp_path)})
    assert r.returncode != 0
    assert "ModelLoadError" in r.stderr and "libaxcl_rt.so" in r.stderr and str(tmp_path) in r.stderr
    assert "/usr/lib/axcl" in r.stderr


def test_missing_symbol(models, cpp_build):
    host, npu = models
    r = run_py(greedy_code(npu, "axcl", 1), {"AXLLM_AXCL_LIB_DIR": str(cpp_build / "axcl_standin_partial")})
    assert r.returncode != 0
    assert "libaxcl_rt.so has no symbol axclrtEngineExecute" in r.stderr


def test_failing_vendor_call_is_a_typed_error(models, cpp_build):
    host, npu = models
    code = f"""
import axllm
llm = axllm.LLM({str(npu)!r}, backend="axcl")
try:
    llm.generate({PROMPT!r}, max_new_tokens=3, temperature=0)
except axllm.EngineError as e:
    print(e.function, hex(e.code & 0xffffffff), str(e))
"""
    r = run_py(code, axcl_env(cpp_build, AXLLM_STANDIN_FAIL="axclrtEngineExecute"))
    assert r.returncode == 0, r.stderr
    function, code_hex, message = r.stdout.split(" ", 2)
    assert function == "axclrtEngineExecute" and code_hex == "0x80060001"
    assert "failed with 0x80060001" in message


def test_failing_init_names_the_call(models, cpp_build):
    host, npu = models
    r = run_py(greedy_code(npu, "axcl", 1), axcl_env(cpp_build, AXLLM_STANDIN_FAIL="axclrtSetDevice"))
    assert r.returncode != 0
    assert "axclrtSetDevice failed with 0x80060001" in r.stderr


def test_versioned_library_and_device_checks(models, cpp_build):
    host, npu = models
    env = {"AXLLM_AXCL_LIB_DIR": str(cpp_build / "axcl_standin_versioned")}
    r = run_py(greedy_code(npu, "axcl", 2), env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["backend"] == "axcl"
    r = run_py(greedy_code(npu, "axcl", 1, devices=[5]), env)
    assert r.returncode != 0 and "ValueError" in r.stderr and "AXCL card 5 does not exist" in r.stderr
    r = run_py(greedy_code(npu, "ax", 1, devices=[0]), env)
    assert r.returncode != 0 and "ValueError" in r.stderr


def test_auto_without_cards_falls_back_to_ax(models, cpp_build):
    host, npu = models
    env = axcl_env(cpp_build, AXLLM_STANDIN_DEVICES="0", AXLLM_AX_LIB_DIR=str(cpp_build / "standin"))
    r = run_py(greedy_code(npu, "auto", 2), env)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["backend"] == "ax"
    r = run_py(greedy_code(npu, "axcl", 1), env)
    assert r.returncode != 0 and "no AXCL card" in r.stderr


def test_inference_session_on_axmodel(models, cpp_build):
    host, npu = models
    code = session_parity_code(host, npu)
    ledger_env = axcl_env(cpp_build)
    r = run_py(code, ledger_env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK")
