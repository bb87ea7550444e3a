"""Tiny models as host builds and as ".axmodel" files for the vendor-library stand-ins
(tests/ax_standin, tests/axcl_standin): each .axmodel is a text file naming its .hostmodel."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from axllm.build import BuildOptions, build
from helpers.tiny_models import TinyConfig, make_model, save_model
from helpers.tiny_tokenizer import write_tiny_tokenizer


def host_and_npu_models(root: Path, cfg: TinyConfig) -> tuple[Path, Path]:
    """(host build dir, stand-in .axmodel dir) of ``cfg`` (P=8, C=64, history groups 8 and 16)."""
    hf = save_model(make_model(cfg), root / "hf")
    write_tiny_tokenizer(hf)
    host = build(
        hf,
        root / "host",
        BuildOptions(
            prefill_len=8,
            kv_cache_len=64,
            last_kv_cache_len=[8, 16],
            hidden_state_type="bf16",
            weight_type="bf16",
        ),
    )
    npu = root / "npu"
    npu.mkdir()
    for f in host.iterdir():
        if f.suffix == ".hostmodel":
            (npu / f.with_suffix(".axmodel").name).write_text(f"axllm-standin-axmodel\n{f.resolve()}\n")
        elif f.name != "config.json":
            shutil.copy(f, npu / f.name)
    return host, npu


def run_python(code: str, env_extra: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (the vendor libraries open once per process), without
    any stand-in settings inherited from this process, plus ``env_extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("AXLLM_AX", "AXLLM_STANDIN", "AXLLM_DEVICES"))
    }
    env.update(env_extra)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout
    )


def session_parity_code(host: Path, npu: Path) -> str:
    """A script opening layer 0 through InferenceSession as an .axmodel (whichever vendor backend
    the environment selects) and as the host-built file: same groups, and the prefill group gives
    identical outputs for the same feed. Prints OK."""
    return f"""
import numpy as np, axllm
s = axllm.InferenceSession({str(npu / "llama_p8_l0_together.axmodel")!r})
c = axllm.InferenceSession({str(host / "llama_p8_l0_together.hostmodel")!r})
assert s.num_groups == c.num_groups == 4
feed = {{i.name: np.ones(i.shape, i.dtype) for i in s.get_inputs(1)}}
a = s.run(None, feed, shape_group=1)
b = c.run(None, feed, shape_group=1)
assert all(np.array_equal(x, y) for x, y in zip(a, b))
print("OK")
"""


def ledger_counter(ledger: Path, prefixes: tuple[str, ...]) -> str:
    """Script text defining ``count()``: how many ledger lines start with each of ``prefixes``
    (a vendor's alloc, free, model load and model unload events)."""
    return f"""
def count():
    lines = open({str(ledger)!r}).read().splitlines()
    return [sum(l.startswith(p) for l in lines) for p in {prefixes!r}]
"""


def llm_close_code(prompt: list[int]) -> str:
    """Script text to append after one that loaded ``llm`` and defined ``count()``: closes it while
    a reference remains, checks that generate then raises ClosedError and that close() is
    idempotent, prints the counts right after close."""
    return f"""
keep = llm  # close() must free while references remain
llm.close()
closed = count()
try:
    llm.generate({prompt!r}, max_new_tokens=1)
    raise SystemExit("generate after close did not raise")
except axllm.ClosedError as e:
    assert "is closed" in str(e), str(e)
llm.close()
print(json.dumps(closed))
"""


def session_close_code(model_file: Path, ledger: Path, prefixes: tuple[str, ...]) -> str:
    """A script opening ``model_file`` through InferenceSession, running group 1, closing it,
    checking that run then raises ClosedError naming the file, then running group 0 in a ``with``
    block. Prints the ``prefixes`` counts after the first run, after close and at the end."""
    return (
        """
import json, numpy as np, axllm
"""
        + ledger_counter(ledger, prefixes)
        + f"""
path = {str(model_file)!r}
s = axllm.InferenceSession(path)
s.run(None, {{i.name: np.ones(i.shape, i.dtype) for i in s.get_inputs(1)}}, shape_group=1)
opened = count()
s.close()
closed = count()
try:
    s.run(None, {{}}, shape_group=1)
    raise SystemExit("run after close did not raise")
except axllm.ClosedError as e:
    assert str(e) == path + " is closed", str(e)
with axllm.InferenceSession(path) as t:
    t.run(None, {{i.name: np.ones(i.shape, i.dtype) for i in t.get_inputs(0)}}, shape_group=0)
print(json.dumps([opened, closed, count()]))
"""
    )


def check_session_close_counts(stdout: str) -> None:
    """Asserts on session_close_code's output: close freed every block and unloaded the model,
    leaving the ``with`` block did the same for the second session."""
    opened, closed, after_with = json.loads(stdout.splitlines()[-1])
    assert opened[0] > 0 and opened[1] == 0 and opened[2] == 1
    assert closed == [opened[0], opened[0], 1, 1], "close() frees every block and unloads the model"
    assert after_with[0] > closed[0] and after_with[1] == after_with[0] and after_with[3] == 2, (
        "leaving the with block closes"
    )
