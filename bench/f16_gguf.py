"""Rewrite a (quantized) GGUF as an F16 GGUF holding the same weights.

Both engines of ``bench/vs_llama_cpp.py`` then read identical numbers: llama.cpp runs the F16
file as it is, axllm builds its bf16 model from it. Every metadata key/value of the source is
copied (tokenizer arrays and chat template included) except ``general.file_type``, which becomes
``MOSTLY_F16``; every tensor is dequantized with ``gguf.quants.dequantize`` and written as F16,
except 1-D tensors (norm weights, biases), which are written as F32 like llama.cpp's own
converter does. Names, shapes and tensor order are preserved.

    python bench/f16_gguf.py SRC.gguf DST.gguf
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import gguf
import numpy as np

__all__ = ["write_f16_gguf"]

MOSTLY_F16 = 1
_FLOAT16_MAX = float(np.finfo(np.float16).max)


def _copy_metadata(reader: gguf.GGUFReader, writer: gguf.GGUFWriter) -> None:
    """Copy every key/value of ``reader`` into ``writer`` except the reader's own header fields
    (``GGUF.*``) and ``general.architecture`` (``GGUFWriter`` writes that itself); sets
    ``general.file_type`` to ``MOSTLY_F16``."""
    for key, field in reader.fields.items():
        if key.startswith("GGUF.") or key == gguf.Keys.General.ARCHITECTURE:
            continue
        if key == gguf.Keys.General.FILE_TYPE:
            writer.add_key_value(key, MOSTLY_F16, gguf.GGUFValueType.UINT32)
            continue
        vtype = field.types[0]
        sub_type = None
        if vtype == gguf.GGUFValueType.ARRAY:
            if len(field.types) != 2:
                raise ValueError(f"metadata key {key!r}: nested arrays are not supported")
            sub_type = field.types[1]
        if key == gguf.Keys.General.ALIGNMENT:
            writer.data_alignment = int(field.contents())
        writer.add_key_value(key, field.contents(), vtype, sub_type)
    if gguf.Keys.General.FILE_TYPE not in reader.fields:
        writer.add_key_value(gguf.Keys.General.FILE_TYPE, MOSTLY_F16, gguf.GGUFValueType.UINT32)


def _f16_tensor(t: gguf.ReaderTensor) -> np.ndarray:
    """Tensor ``t`` dequantized, shaped in numpy order (the reverse of ``t.shape``, which is
    ggml order), as float16, or float32 when it is 1-D. Raises ``ValueError`` if a value does
    not fit in float16."""
    numpy_shape = tuple(int(d) for d in reversed(t.shape))
    w = gguf.quants.dequantize(t.data, t.tensor_type).reshape(numpy_shape)
    if w.ndim <= 1:
        return np.ascontiguousarray(w, dtype=np.float32)
    peak = float(np.max(np.abs(w)))
    if not np.isfinite(peak) or peak > _FLOAT16_MAX:
        raise ValueError(f"tensor {t.name!r}: max |value| {peak} does not fit in float16")
    return np.ascontiguousarray(w, dtype=np.float16)


def write_f16_gguf(src: Path, dst: Path) -> Path:
    """Write ``src``'s weights and metadata as an F16 GGUF at ``dst``; returns ``dst``.

    The file is written to a temporary name in ``dst``'s directory and renamed into place only
    when complete, so ``dst`` is either absent or whole. An existing ``dst`` is replaced.
    Tensors are converted and written one at a time (peak memory is about one float32 tensor).
    Raises ``ValueError`` for a tensor whose values overflow float16, or a nested-array key.
    """
    src, dst = Path(src), Path(dst)
    reader = gguf.GGUFReader(src)
    arch = reader.fields[gguf.Keys.General.ARCHITECTURE].contents()
    dst.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{dst.name}.", suffix=".tmp", dir=dst.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        writer = gguf.GGUFWriter(tmp, arch)
        _copy_metadata(reader, writer)
        for t in reader.tensors:
            ndim = len(t.shape)
            dtype = np.dtype(np.float32 if ndim <= 1 else np.float16)
            numpy_shape = tuple(int(d) for d in reversed(t.shape))
            nbytes = int(np.prod(numpy_shape)) * dtype.itemsize
            writer.add_tensor_info(t.name, numpy_shape, dtype, nbytes)
        writer.write_header_to_file()
        writer.write_kv_data_to_file()
        writer.write_ti_data_to_file()
        for t in reader.tensors:
            writer.write_tensor_data(_f16_tensor(t))
        writer.close()
        os.chmod(tmp, 0o644)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)
    return dst


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("src", type=Path)
    p.add_argument("dst", type=Path)
    args = p.parse_args()
    print(write_f16_gguf(args.src, args.dst))


if __name__ == "__main__":
    main()
