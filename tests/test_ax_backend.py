"""The native AX backend through the test-only stand-ins of libax_sys.so and libax_engine.so
(same symbols and struct layouts; each .axmodel runs on the host engine; every call goes to a
ledger): greedy generation equals the host backend token for token, CMM is freed exactly once at
close, at exit and on SIGTERM or SIGINT, inputs are flushed before and outputs invalidated after every run,
nothing is allocated per token, and missing libraries, missing symbols and failing vendor calls
raise typed errors naming them. Each scenario runs in its own process (the vendor libraries are
opened once per process)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter

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
LEDGER_EVENTS = ("alloc ", "free ", "AX_ENGINE_CreateHandle", "AX_ENGINE_DestroyHandle")
PROMPT = [(3 * i + 5) % 250 for i in range(19)]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A host build and the same model as ".axmodel" stand-in files."""
    return host_and_npu_models(
        tmp_path_factory.mktemp("ax"),
        TinyConfig("llama", num_heads=4, num_kv_heads=2, vocab_size=300, seed=61),
    )


def run_py(code: str, env_extra: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    return run_python(code, env_extra, timeout)


def ledger_events(path):
    lines = path.read_text().splitlines() if path.exists() else []
    return [line.rsplit(" tid=", 1) for line in lines]


def greedy_code(model_dir, backend, n=20):
    return f"""
import json, axllm
llm = axllm.LLM({str(model_dir)!r}, backend={backend!r})
out = llm.generate({PROMPT!r}, max_new_tokens={n}, temperature=0)
print(json.dumps({{"ids": out.token_ids, "backend": llm.backend}}))
"""


def test_greedy_through_ax_equals_host(models, cpp_build, tmp_path):
    host, npu = models
    ledger = tmp_path / "ledger.txt"
    cpu = run_py(greedy_code(host, "host"), {})
    ax = run_py(
        greedy_code(npu, "auto"),
        {"AXLLM_AX_LIB_DIR": str(cpp_build / "standin"), "AXLLM_STANDIN_LEDGER": str(ledger)},
    )
    assert cpu.returncode == 0, cpu.stderr
    assert ax.returncode == 0, ax.stderr
    a, b = json.loads(cpu.stdout), json.loads(ax.stdout)
    assert b["backend"] == "ax"
    assert a["ids"] == b["ids"] and len(a["ids"]) == 20

    events = ledger_events(ledger)
    names = [e[0].split()[0] for e in events]
    assert names.count("AX_SYS_Init") == 1 and names.count("AX_ENGINE_Init") == 1
    allocs = Counter(e[0].split()[1] for e in events if e[0].startswith("alloc "))
    frees = Counter(e[0].split()[1] for e in events if e[0].startswith("free "))
    assert allocs and all(v == 1 for v in allocs.values())
    assert frees == allocs, "every CMM block freed exactly once (at exit here)"
    assert not any(n.endswith("-invalid") for n in names)

    # Inputs flushed before and outputs invalidated after every run.
    runs = [i for i, n in enumerate(names) if n == "run"]
    assert len(runs) >= 20 * 3
    previous = -1
    for k, i in enumerate(runs):
        fields = dict(f.split("=", 1) for f in events[i][0].split()[2:])
        ins = [x for x in fields["in"].split(",") if x]
        outs = [x for x in fields["out"].split(",") if x]
        flushed = {" ".join(events[j][0].split()[1:3]) for j in range(previous + 1, i) if names[j] == "flush"}
        for x in ins:
            phy, size = x.split(":")
            assert f"{phy} {size}" in flushed, f"run {k}: input {x} not flushed before the run"
        nxt = runs[k + 1] if k + 1 < len(runs) else len(events)
        invalidated = {
            " ".join(events[j][0].split()[1:3]) for j in range(i + 1, nxt) if names[j] == "invalidate"
        }
        for x in outs:
            phy, size = x.split(":")
            assert f"{phy} {size}" in invalidated, f"run {k}: output {x} not invalidated after the run"
        previous = i

    # No allocation per token: every alloc comes before the first run.
    last_alloc = max(i for i, n in enumerate(names) if n == "alloc")
    assert last_alloc < runs[0]


def test_close_frees_every_buffer_once(models, cpp_build, tmp_path):
    host, npu = models
    ledger = tmp_path / "ledger.txt"
    code = (
        greedy_code(npu, "ax", 3)
        + f"""
import gc
del llm, out
gc.collect()
lines = open({str(ledger)!r}).read().splitlines()
print(json.dumps([sum(l.startswith("alloc ") for l in lines), sum(l.startswith("free ") for l in lines)]))
"""
    )
    r = run_py(code, {"AXLLM_AX_LIB_DIR": str(cpp_build / "standin"), "AXLLM_STANDIN_LEDGER": str(ledger)})
    assert r.returncode == 0, r.stderr
    n_alloc, n_free_at_close = json.loads(r.stdout.splitlines()[-1])
    assert n_alloc > 0 and n_free_at_close == n_alloc, "closing the LLM frees its CMM, before exit"
    events = [e[0] for e in ledger_events(ledger)]
    allocs = [e.split()[1] for e in events if e.startswith("alloc ")]
    frees = [e.split()[1] for e in events if e.startswith("free ")]
    assert sorted(allocs) == sorted(frees), "and exit frees nothing twice"
    destroys = [e for e in events if e.startswith("AX_ENGINE_DestroyHandle")]
    creates = [e for e in events if e.startswith("AX_ENGINE_CreateHandle")]
    assert len(destroys) == len(creates) == 3


def test_llm_close_frees_every_buffer_once(models, cpp_build, tmp_path):
    """LLM.close() frees every CMM block and engine handle at once, the LLM refuses use after it,
    and exit frees nothing twice."""
    host, npu = models
    ledger = tmp_path / "ledger.txt"
    code = greedy_code(npu, "ax", 3) + ledger_counter(ledger, LEDGER_EVENTS) + llm_close_code(PROMPT)
    r = run_py(code, {"AXLLM_AX_LIB_DIR": str(cpp_build / "standin"), "AXLLM_STANDIN_LEDGER": str(ledger)})
    assert r.returncode == 0, r.stderr
    n_alloc, n_free, n_create, n_destroy = json.loads(r.stdout.splitlines()[-1])
    assert n_alloc > 0 and n_free == n_alloc, "LLM.close() frees its CMM, before exit"
    assert n_create == n_destroy == 3, "and destroys its engine handles"
    events = [e[0] for e in ledger_events(ledger)]
    assert sorted(e.split()[1] for e in events if e.startswith("alloc ")) == sorted(
        e.split()[1] for e in events if e.startswith("free ")
    ), "exit frees nothing twice"


def test_inference_session_close_frees_its_memory(models, cpp_build, tmp_path):
    """InferenceSession.close() (and leaving ``with``) frees the session's CMM and engine handle
    at once; the session refuses use after it; exit frees nothing twice."""
    host, npu = models
    ledger = tmp_path / "ledger.txt"
    code = session_close_code(npu / "llama_p8_l0_together.axmodel", ledger, LEDGER_EVENTS)
    r = run_py(code, {"AXLLM_AX_LIB_DIR": str(cpp_build / "standin"), "AXLLM_STANDIN_LEDGER": str(ledger)})
    assert r.returncode == 0, r.stderr
    check_session_close_counts(r.stdout)
    events = [e[0] for e in ledger_events(ledger)]
    frees = Counter(e.split()[1] for e in events if e.startswith("free "))
    assert all(v == 1 for v in frees.values()) and not any("-invalid" in e for e in events), (
        "exit frees nothing twice"
    )


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_signal_frees_cmm(models, cpp_build, tmp_path, sig):
    """A killed process frees the CMM of its LLM and of an open InferenceSession: on SIGTERM from
    the signal handler (best effort, see csrc/src/util/vendor_blocks.h), on SIGINT through
    KeyboardInterrupt and interpreter exit."""
    host, npu = models
    ledger = tmp_path / "ledger.txt"
    code = f"""
import axllm, sys, numpy as np
llm = axllm.LLM({str(npu)!r}, backend="ax")
s = axllm.InferenceSession({str(npu / "llama_p8_l0_together.axmodel")!r})
s.run(None, {{i.name: np.ones(i.shape, i.dtype) for i in s.get_inputs(1)}}, shape_group=1)
print("READY", flush=True)
while True:
    llm.generate({PROMPT!r}, max_new_tokens=40, temperature=1.0, seed=1)
"""
    env = {**os.environ, "AXLLM_AX_LIB_DIR": str(cpp_build / "standin"), "AXLLM_STANDIN_LEDGER": str(ledger)}
    with signalled_child(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    ) as p:
        assert p.stdout.readline().strip() == "READY"
        time.sleep(0.5)
        p.send_signal(sig)
        p.wait(30)
        assert p.returncode == -sig, p.stderr.read()
    events = [e[0] for e in ledger_events(ledger)]
    allocs = Counter(e.split()[1] for e in events if e.startswith("alloc "))
    frees = Counter(e.split()[1] for e in events if e.startswith("free "))
    assert allocs and frees == allocs, f"{sig.name} must free every CMM block exactly once"
    assert any(e.startswith("run ") for e in events)


def test_missing_library(models, tmp_path):
    host, npu = models
    r = run_py(greedy_code(npu, "auto", 1), {"AXLLM_AX_LIB_DIR": str(tmp_path)})
    assert r.returncode != 0
    assert "ModelLoadError" in r.stderr and "libax_sys.so" in r.stderr and str(tmp_path) in r.stderr


def test_missing_symbol(models, cpp_build):
    host, npu = models
    r = run_py(greedy_code(npu, "ax", 1), {"AXLLM_AX_LIB_DIR": str(cpp_build / "standin_partial")})
    assert r.returncode != 0
    assert "AX_ENGINE_RunGroupIOSync" in r.stderr and "libax_engine.so has no symbol" in r.stderr


def test_failing_vendor_call_is_a_typed_error(models, cpp_build):
    host, npu = models
    code = f"""
import axllm
llm = axllm.LLM({str(npu)!r}, backend="ax")
try:
    llm.generate({PROMPT!r}, max_new_tokens=3, temperature=0)
except axllm.EngineError as e:
    print(e.function, hex(e.code & 0xffffffff), str(e))
"""
    r = run_py(
        code,
        {"AXLLM_AX_LIB_DIR": str(cpp_build / "standin"), "AXLLM_STANDIN_FAIL": "AX_ENGINE_RunGroupIOSync"},
    )
    assert r.returncode == 0, r.stderr
    function, code_hex, message = r.stdout.split(" ", 2)
    assert function == "AX_ENGINE_RunGroupIOSync" and code_hex == "0x80060001"
    assert re.search(r"failed with 0x80060001", message)


def test_inference_session_on_axmodel(models, cpp_build):
    host, npu = models
    code = session_parity_code(host, npu)
    r = run_py(code, {"AXLLM_AX_LIB_DIR": str(cpp_build / "standin")})
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("OK")


def test_inspect_on_both_backends(models, cpp_build):
    host, npu = models
    env = {"AXLLM_AX_LIB_DIR": str(cpp_build / "standin")}
    for d, backend in ((host, "host"), (npu, "ax")):
        r = subprocess.run(
            [sys.executable, "-m", "axllm.inspect", str(d)],
            capture_output=True,
            text=True,
            env={**os.environ, **env},
            timeout=120,
        )
        assert r.returncode == 0, r.stderr
        assert f"backend {backend}, 2 layers" in r.stdout
        assert "D (kv dim) 32, C (context) 64, P (prefill) 8" in r.stdout
        assert "2 = prefill with history H_g 8; 3 = prefill with history H_g 16" in r.stdout
        assert re.search(r"in  mask +\[1,8,24\] +bfloat16 +384 B", r.stdout)
    r = subprocess.run(
        [sys.executable, "-m", "axllm.inspect", str(npu / "missing")], capture_output=True, text=True
    )
    assert r.returncode == 1 and r.stderr.startswith("error: ")
