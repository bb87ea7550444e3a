"""Tiny models as host builds and as ".axmodel" files for the vendor-library stand-ins
(tests/ax_standin, tests/axcl_standin): each .axmodel is a text file naming its .cpumodel."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

from helpers.tiny_models import TinyConfig, make_model, save_model
from helpers.tiny_tokenizer import write_tiny_tokenizer

from axllm.build import BuildOptions, build


def host_and_npu_models(root: Path, cfg: TinyConfig) -> tuple[Path, Path]:
    """(host build dir, stand-in .axmodel dir) of ``cfg`` (P=8, C=64, history groups 8 and 16)."""
    hf = save_model(make_model(cfg), root / "hf")
    write_tiny_tokenizer(hf)
    host = build(hf, root / "host", BuildOptions(prefill_len=8, kv_cache_len=64, last_kv_cache_len=[8, 16],
                                                  hidden_state_type="bf16", weight_type="bf16"))
    npu = root / "npu"
    npu.mkdir()
    for f in host.iterdir():
        if f.suffix == ".cpumodel":
            (npu / f.with_suffix(".axmodel").name).write_text(f"axllm-standin-axmodel\n{f.resolve()}\n")
        elif f.name != "config.json":
            shutil.copy(f, npu / f.name)
    return host, npu


def run_python(code: str, env_extra: dict, timeout: float = 180) -> subprocess.CompletedProcess:
    """Runs ``code`` in a fresh interpreter (the vendor libraries open once per process), without
    any stand-in settings inherited from this process, plus ``env_extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AXLLM_AX", "AXLLM_STANDIN", "AXLLM_DEVICES"))}
    env.update(env_extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=timeout)


def session_parity_code(host: Path, npu: Path) -> str:
    """A script opening layer 0 through InferenceSession as an .axmodel (whichever vendor backend
    the environment selects) and as the host-built file: same groups, and the prefill group gives
    identical outputs for the same feed. Prints OK."""
    return f"""
import numpy as np, axllm
s = axllm.InferenceSession({str(npu / 'llama_p8_l0_together.axmodel')!r})
c = axllm.InferenceSession({str(host / 'llama_p8_l0_together.cpumodel')!r})
assert s.num_groups == c.num_groups == 4
feed = {{i.name: np.ones(i.shape, i.dtype) for i in s.get_inputs(1)}}
a = s.run(None, feed, shape_group=1)
b = c.run(None, feed, shape_group=1)
assert all(np.array_equal(x, y) for x, y in zip(a, b))
print("OK")
"""
