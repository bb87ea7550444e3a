"""Writes the host engine's ``.hostmodel`` files (format documented in
``csrc/src/host/host_model_file.h``): a text header of ``key value`` lines and ``tensor`` lines,
``end``, then 64-byte-aligned tensor data."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import ml_dtypes
import numpy as np

FORMAT_VERSION = 1
EXTENSION = "hostmodel"
_ALIGN = 64
_DTYPE_NAMES = {
    np.dtype(ml_dtypes.bfloat16): "bf16",
    np.dtype(np.float16): "fp16",
    np.dtype(np.float32): "fp32",
}


def _format(value: object) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return " ".join(_format(v) for v in value)
    return str(value)


_NAME_DTYPES = {v: k for k, v in _DTYPE_NAMES.items()}


def read_host_model(path: Path) -> tuple[dict[str, list[str]], dict[str, np.ndarray]]:
    """Reads a ``.hostmodel`` back: header values (as string lists) and tensors (memory-mapped)."""
    raw = np.memmap(path, dtype=np.uint8, mode="r")
    head_end = bytes(raw[: 1 << 20]).find(b"\nend\n")
    if head_end < 0:
        raise ValueError(f"{path}: not a complete .hostmodel header")
    data_start = (head_end + 5 + _ALIGN - 1) // _ALIGN * _ALIGN
    header: dict[str, list[str]] = {}
    tensors: dict[str, np.ndarray] = {}
    for line in bytes(raw[:head_end]).decode("utf-8").splitlines():
        key, *values = line.split()
        if key == "tensor":
            name, dtype, shape, offset, nbytes = values
            dims = tuple(int(d) for d in shape.split(","))
            start = data_start + int(offset)
            view = raw[start : start + int(nbytes)].view(_NAME_DTYPES[dtype])
            tensors[name] = view.reshape(dims)
        else:
            header[key] = values
    return header, tensors


def write_host_model(
    path: Path, header: Mapping[str, object], tensors: Sequence[tuple[str, np.ndarray]]
) -> None:
    """Writes ``tensors`` (name, contiguous bf16/fp16/fp32 array) under ``header`` atomically."""
    lines = [f"axllm-hostmodel {FORMAT_VERSION}"]
    for key, value in header.items():
        text = _format(value)
        lines.append(f"{key} {text}".rstrip())
    offset = 0
    layout = []
    for name, array in tensors:
        if array.dtype not in _DTYPE_NAMES:
            raise TypeError(f"tensor {name!r}: unsupported dtype {array.dtype}")
        if any(c.isspace() for c in name):
            raise ValueError(f"tensor name {name!r} contains whitespace")
        shape = ",".join(str(d) for d in array.shape)
        lines.append(f"tensor {name} {_DTYPE_NAMES[array.dtype]} {shape} {offset} {array.nbytes}")
        layout.append((offset, array))
        offset += (array.nbytes + _ALIGN - 1) // _ALIGN * _ALIGN
    lines.append("end")
    head = ("\n".join(lines) + "\n").encode("utf-8")
    data_start = (len(head) + _ALIGN - 1) // _ALIGN * _ALIGN
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(head)
        f.write(b"\0" * (data_start - len(head)))
        for tensor_offset, array in layout:
            pos = data_start + tensor_offset
            f.write(b"\0" * (pos - f.tell()))
            f.write(np.ascontiguousarray(array).tobytes())
    os.replace(tmp, path)
