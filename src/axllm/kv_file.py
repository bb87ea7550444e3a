"""KV files: a KV cache (its rows and the token ids behind them) saved in a versioned file, and
ax-llm's kvcache directory. These functions work on ``KvSnapshot``s and plain data;
``LLM.save_kv``/``load_kv``/``export_kvcache``/``import_kvcache`` connect them to a model.

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
from typing import Any, Callable, Optional

from axllm.errors import KvFileMismatchError, ModelLoadError
from axllm.kv_snapshot import KvSnapshot

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


def identity(fingerprint: str, chat_template_sha256: str, geometry: dict[str, Any]) -> dict[str, Any]:
    """What a KV file must match to be loaded into a model: its files, chat template and KV
    geometry (``geometry`` as ``LLM.geometry`` gives it)."""
    return {
        "model_fingerprint": fingerprint,
        "chat_template_sha256": chat_template_sha256,
        "geometry": {k: geometry[k] for k in ("n_layers", "kv_dim", "kv_len", "io_dtype")},
    }


def write(
    path: str | os.PathLike, snapshot: KvSnapshot, ident: dict[str, Any], extra: Optional[dict] = None
) -> Path:
    """Writes ``snapshot`` of the model ``ident`` names (atomically); returns the path."""
    header = {
        "format_version": FORMAT_VERSION,
        "axllm_version": _version(),
        **ident,
        "tokens": list(snapshot.tokens),
        "pinned": int(snapshot.pinned),
        "extra": extra or {},
    }
    blob = json.dumps(header, ensure_ascii=False).encode("utf-8")
    head = MAGIC + struct.pack("<II", FORMAT_VERSION, len(blob)) + blob
    head += b"\0" * (-len(head) % _ALIGN)
    out = Path(path)
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(head)
        for k, v in zip(snapshot.k, snapshot.v):
            f.write(k)
            f.write(v)
    os.replace(tmp, out)
    return out


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], int]:
    """The header of a KV file and the offset of its first row."""
    p = Path(path)
    try:
        with open(p, "rb") as f:
            start = f.read(16)
            if len(start) < 16 or start[:8] != MAGIC:
                raise ModelLoadError(f"{p}: not an axllm KV file")
            version, length = struct.unpack("<II", start[8:16])
            if version != FORMAT_VERSION:
                raise KvFileMismatchError(
                    f"{p}: KV file format version {version}, this axllm reads {FORMAT_VERSION}"
                )
            blob = f.read(length)
    except OSError as e:
        raise ModelLoadError(f"{p}: cannot read the KV file: {e}") from e
    if len(blob) != length:
        raise ModelLoadError(f"{p}: truncated KV file header")
    try:
        header = json.loads(blob.decode("utf-8"))
    except ValueError as e:
        raise ModelLoadError(f"{p}: corrupt KV file header: {e}") from e
    offset = 16 + length
    return header, offset + (-offset % _ALIGN)


def check_compatible(ident: dict[str, Any], header: dict[str, Any], path: Path) -> None:
    """Raises KvFileMismatchError saying what differs between the file and the model ``ident``."""
    diffs = []
    if header.get("model_fingerprint") != ident["model_fingerprint"]:
        diffs.append("model fingerprint (another model or build)")
    if header.get("chat_template_sha256") != ident["chat_template_sha256"]:
        diffs.append("chat template")
    mine = ident["geometry"]
    theirs = header.get("geometry", {})
    for key in ("n_layers", "kv_dim", "io_dtype"):
        if theirs.get(key) != mine[key]:
            diffs.append(f"{key} {theirs.get(key)!r} != {mine[key]!r}")
    if diffs:
        raise KvFileMismatchError(f"{path}: the KV file does not match this model: {'; '.join(diffs)}")


def read(path: str | os.PathLike, ident: dict[str, Any]) -> tuple[KvSnapshot, dict]:
    """The snapshot saved in ``path`` for the model ``ident`` names, and the ``extra`` saved with
    it."""
    p = Path(path)
    header, offset = read_header(p)
    check_compatible(ident, header, p)
    tokens = [int(t) for t in header["tokens"]]
    geometry = ident["geometry"]
    layer_bytes = len(tokens) * row_bytes(geometry)
    n_layers = int(geometry["n_layers"])
    expected = offset + 2 * n_layers * layer_bytes
    if p.stat().st_size != expected:
        raise ModelLoadError(
            f"{p}: {p.stat().st_size} bytes, expected {expected} for {len(tokens)} tokens x {n_layers} layers"
        )
    k: list[bytes] = []
    v: list[bytes] = []
    with open(p, "rb") as f:
        f.seek(offset)
        for _ in range(n_layers):
            k.append(f.read(layer_bytes))
            v.append(f.read(layer_bytes))
    pinned = min(int(header.get("pinned", 0)), len(tokens))
    return KvSnapshot(tokens, k, v, pinned), dict(header.get("extra", {}))


def write_axllm_kvcache(directory: str | os.PathLike, snapshot: KvSnapshot, system_prompt: str) -> Path:
    """Writes ax-llm's kvcache directory: ``k_cache_<l>.bin``/``v_cache_<l>.bin`` (raw rows of
    the cached tokens) and ``config.json`` with ``system_prompt`` and ``precompute_len``."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    for layer, (k, v) in enumerate(zip(snapshot.k, snapshot.v)):
        (d / f"k_cache_{layer}.bin").write_bytes(k)
        (d / f"v_cache_{layer}.bin").write_bytes(v)
    (d / "config.json").write_text(
        json.dumps(
            {"system_prompt": system_prompt, "precompute_len": len(snapshot.tokens)},
            ensure_ascii=False,
            indent=2,
        )
        + "\n"
    )
    return d


def read_axllm_kvcache(
    directory: str | os.PathLike, geometry: dict[str, Any], tokens_of: Callable[[str], list[int]]
) -> tuple[KvSnapshot, str]:
    """Reads ax-llm's kvcache directory as a snapshot whose tokens (all pinned) are
    ``tokens_of(system_prompt)``, the system prompt rendered by the model's chat template (they
    must number ``precompute_len``); returns it and the system prompt."""
    d = Path(directory)
    config_path = d / "config.json"
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        system_prompt = str(config["system_prompt"])
        n = int(config["precompute_len"])
    except (OSError, ValueError, KeyError) as e:
        raise ModelLoadError(f"{config_path}: not an ax-llm kvcache config: {e}") from e
    tokens = tokens_of(system_prompt)
    if len(tokens) != n:
        raise KvFileMismatchError(
            f"{config_path}: precompute_len is {n} but this model's chat template makes "
            f"{len(tokens)} tokens of the system prompt"
        )
    size = row_bytes(geometry)
    k: list[bytes] = []
    v: list[bytes] = []
    for layer in range(int(geometry["n_layers"])):
        for kind, out in (("k", k), ("v", v)):
            f = d / f"{kind}_cache_{layer}.bin"
            try:
                data = f.read_bytes()
            except OSError as e:
                raise ModelLoadError(f"{f}: cannot read: {e}") from e
            if len(data) != n * size:
                raise KvFileMismatchError(f"{f}: {len(data)} bytes, expected {n} rows x {size}")
            out.append(data)
    return KvSnapshot(tokens, k, v, n), system_prompt


def row_bytes(geometry: dict[str, Any]) -> int:
    """Bytes of one K (or V) row of one layer."""
    size = {"bf16": 2, "fp16": 2, "fp32": 4}[geometry["io_dtype"]]
    return int(geometry["kv_dim"]) * size


def _version() -> str:
    from axllm import __version__

    return __version__
