"""Saved conversations: the KV cache rows and the token ids behind them, in a versioned file, and
import/export of ax-llm's kvcache directory.

File layout (little-endian): ``b"AXLLMKV\\0"``, uint32 format version, uint32 header length, the
header as UTF-8 JSON (format version, axllm version, model fingerprint, chat template sha256, KV
geometry and dtype, token ids, pinned prefix, caller's ``extra``), zero padding to a multiple of
64, then for each layer its K rows followed by its V rows (``len(tokens)`` rows each, in the
engine's layout and dtype).
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any, Optional

from axllm.errors import ModelLoadError, SessionMismatchError

if TYPE_CHECKING:
    from axllm.llm import LLM

MAGIC = b"AXLLMKV\0"
FORMAT_VERSION = 1
_ALIGN = 64
_SAMPLE = 1 << 16


def model_fingerprint(files: dict) -> str:
    """sha256 over each model file's name, size and first and last 64 KiB: stable across copies,
    different for another model or build."""
    h = hashlib.sha256()
    for path in [*files["layers"], files["post"], files["embeddings"]]:
        p = Path(path)
        size = p.stat().st_size
        h.update(p.name.encode() + b"\0" + str(size).encode() + b"\0")
        with open(p, "rb") as f:
            h.update(f.read(_SAMPLE))
            if size > 2 * _SAMPLE:
                f.seek(size - _SAMPLE)
            h.update(f.read(_SAMPLE))
    return h.hexdigest()


def _geometry(llm: "LLM") -> dict[str, Any]:
    g = llm.geometry
    return {k: g[k] for k in ("n_layers", "kv_dim", "kv_len", "io_dtype")}


def save(llm: "LLM", path: str | os.PathLike, extra: Optional[dict] = None) -> Path:
    """Writes the cache of ``llm`` (atomically) and returns the path."""
    core = llm._core
    tokens = list(core.kv_tokens)
    header = {
        "format_version": FORMAT_VERSION,
        "axllm_version": _version(),
        "model_fingerprint": llm.fingerprint,
        "chat_template_sha256": llm.chat_template.sha256,
        "geometry": _geometry(llm),
        "tokens": tokens,
        "pinned": int(core.pinned_prefix),
        "extra": extra or {},
    }
    blob = json.dumps(header, ensure_ascii=False).encode("utf-8")
    head = MAGIC + struct.pack("<II", FORMAT_VERSION, len(blob)) + blob
    head += b"\0" * (-len(head) % _ALIGN)
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(head)
        for layer in range(llm.geometry["n_layers"]):
            f.write(core.read_kv(layer, False, len(tokens)))
            f.write(core.read_kv(layer, True, len(tokens)))
    os.replace(tmp, out)
    return out


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """The header of a session file and the offset of its first row."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            start = f.read(16)
            if len(start) < 16 or start[:8] != MAGIC:
                raise ModelLoadError(f"{p}: not an axllm session file")
            version, length = struct.unpack("<II", start[8:16])
            if version != FORMAT_VERSION:
                raise SessionMismatchError(f"{p}: session format version {version}, this axllm reads "
                                           f"{FORMAT_VERSION}")
            blob = f.read(length)
    except OSError as e:
        raise ModelLoadError(f"{p}: cannot read session: {e}") from e
    if len(blob) != length:
        raise ModelLoadError(f"{p}: truncated session header")
    try:
        header = json.loads(blob.decode("utf-8"))
    except ValueError as e:
        raise ModelLoadError(f"{p}: corrupt session header: {e}") from e
    offset = 16 + length
    return header, offset + (-offset % _ALIGN)


def check_compatible(llm: "LLM", header: dict[str, Any], path: Path) -> None:
    """Raises SessionMismatchError saying what differs between the file and ``llm``."""
    diffs = []
    if header.get("model_fingerprint") != llm.fingerprint:
        diffs.append("model fingerprint (another model or build)")
    if header.get("chat_template_sha256") != llm.chat_template.sha256:
        diffs.append("chat template")
    mine = _geometry(llm)
    theirs = header.get("geometry", {})
    for key in ("n_layers", "kv_dim", "io_dtype"):
        if theirs.get(key) != mine[key]:
            diffs.append(f"{key} {theirs.get(key)!r} != {mine[key]!r}")
    if diffs:
        raise SessionMismatchError(f"{path}: the session does not match this model: {'; '.join(diffs)}")


def load(llm: "LLM", path: str | os.PathLike) -> dict:
    """Restores a saved cache into ``llm``; returns the ``extra`` saved with it."""
    p = Path(path)
    header, offset = read_header(p)
    check_compatible(llm, header, p)
    tokens = [int(t) for t in header["tokens"]]
    row_bytes = _row_bytes(llm)
    layer_bytes = len(tokens) * row_bytes
    n_layers = llm.geometry["n_layers"]
    expected = offset + 2 * n_layers * layer_bytes
    if p.stat().st_size != expected:
        raise ModelLoadError(f"{p}: {p.stat().st_size} bytes, expected {expected} for {len(tokens)} "
                             f"tokens x {n_layers} layers")
    k, v = [], []
    with open(p, "rb") as f:
        f.seek(offset)
        for _ in range(n_layers):
            k.append(f.read(layer_bytes))
            v.append(f.read(layer_bytes))
    llm._core.load_kv(tokens, k, v)
    llm._core.pin_prefix(min(int(header.get("pinned", 0)), len(tokens)))
    return dict(header.get("extra", {}))


def export_axllm_kvcache(llm: "LLM", directory: str | os.PathLike, system_prompt: str) -> Path:
    """Writes ax-llm's kvcache directory: ``k_cache_<l>.bin``/``v_cache_<l>.bin`` (raw rows of
    the cached tokens) and ``config.json`` with ``system_prompt`` and ``precompute_len``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    n = int(llm._core.kv_size)
    for layer in range(llm.geometry["n_layers"]):
        (d / f"k_cache_{layer}.bin").write_bytes(llm._core.read_kv(layer, False, n))
        (d / f"v_cache_{layer}.bin").write_bytes(llm._core.read_kv(layer, True, n))
    (d / "config.json").write_text(json.dumps({"system_prompt": system_prompt, "precompute_len": n},
                                              ensure_ascii=False, indent=2) + "\n")
    return d


def import_axllm_kvcache(llm: "LLM", directory: str | os.PathLike) -> str:
    """Loads ax-llm's kvcache directory. The token ids are those of the system prompt rendered by
    this model's chat template (they must number ``precompute_len``); returns the system prompt."""
    d = Path(directory)
    config_path = d / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        system_prompt = str(config["system_prompt"])
        n = int(config["precompute_len"])
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"{config_path}: not an ax-llm kvcache config: {e}") from e
    tokens = llm.system_prompt_tokens(system_prompt)
    if len(tokens) != n:
        raise SessionMismatchError(
            f"{config_path}: precompute_len is {n} but this model's chat template makes "
            f"{len(tokens)} tokens of the system prompt")
    row_bytes = _row_bytes(llm)
    k, v = [], []
    for layer in range(llm.geometry["n_layers"]):
        for kind, out in (("k", k), ("v", v)):
            f = d / f"{kind}_cache_{layer}.bin"
            try:
                data = f.read_bytes()
            except OSError as e:
                raise ModelLoadError(f"{f}: cannot read: {e}") from e
            if len(data) != n * row_bytes:
                raise SessionMismatchError(f"{f}: {len(data)} bytes, expected {n} rows x {row_bytes}")
            out.append(data)
    llm._core.load_kv(tokens, k, v)
    llm._core.pin_prefix(n)
    return system_prompt


def _row_bytes(llm: "LLM") -> int:
    g = llm.geometry
    size = {"bf16": 2, "fp16": 2, "fp32": 4}[g["io_dtype"]]
    return int(g["kv_dim"]) * size


def _version() -> str:
    from axllm import __version__

    return __version__
