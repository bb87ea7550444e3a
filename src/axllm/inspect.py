"""``python -m axllm.inspect MODEL``: the shape groups of a model's files (name, shape, dtype,
bytes per tensor) and what the runtime derives from them (C, D, P, H_g), on any backend.

MODEL is a single model file (``.axmodel`` or ``.hostmodel``) or a model directory (a pulsar2
build or an AXERA package: layer 0, the post model and the derived geometry are shown).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Optional

from axllm._cli import plain_text
from axllm.errors import AxllmError


def describe_file(path: Path, backend: str) -> str:
    from axllm.inference_session import InferenceSession

    sess = InferenceSession(path, providers=None if backend == "auto" else backend)
    lines = [f"{path}: {sess.num_groups} shape group(s)"]
    for g in range(sess.num_groups):
        lines.append(f"  group {g}")
        for kind, args in (("in ", sess.get_inputs(g)), ("out", sess.get_outputs(g))):
            for a in args:
                shape = "[" + ",".join(map(str, a.shape)) + "]"
                lines.append(f"    {kind} {a.name:<14} {shape:<18} {a.dtype.name:<9} {a.nbytes:>12,} B")
    return "\n".join(lines)


def describe_model(path: Path, backend: str) -> str:
    from axllm import _core

    llm = _core.LLM(str(path), backend)
    g = llm.geometry
    files = llm.files
    caps = g["history_capacity"]
    out = [
        f"{path}: backend {llm.backend}, {g['n_layers']} layers ({files['layer_template']})",
        f"  H (hidden) {g['hidden']}, D (kv dim) {g['kv_dim']}, C (context) {g['kv_len']}, "
        f"P (prefill) {g['prefill_len']}, V (vocab) {g['vocab']}, io {g['io_dtype']}",
        "  groups: 0 = decode; 1 = prefill without history"
        + "".join(f"; {i} = prefill with history H_g {h}" for i, h in enumerate(caps) if i >= 2),
        f"  embeddings {files['embeddings']}",
        describe_file(Path(files["layers"][0]), backend),
        describe_file(Path(files["post"]), backend),
    ]
    return "\n".join(out)


def main(argv: Optional[list[str]] = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m axllm.inspect",
        description=plain_text(__doc__ or ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model")
    p.add_argument("--backend", default="auto", help="auto, host, ax or axcl")
    args = p.parse_args(argv)
    path = Path(args.model)
    try:
        print(describe_model(path, args.backend) if path.is_dir() else describe_file(path, args.backend))
    except (AxllmError, ValueError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
