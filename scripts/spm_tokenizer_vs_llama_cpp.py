"""Compares axllm's tokenizer for a SentencePiece GGUF (tokenizer.ggml.model "llama") with
llama.cpp's own tokenization of the same file, and with sentencepiece on the original model.

The GGUF and the texts come from tests/test_gguf_spm_tokenizer.py (a SentencePiece BPE model
trained with Llama's settings; 400 random texts with runs of spaces, newlines, digits, bytes
outside the vocabulary and a user-defined token). llama.cpp runs in ``--llama-python``'s
interpreter (llama-cpp-python with ``vocab_only=True``); the CI tests use sentencepiece alone,
since llama.cpp is not installed there. Exit status 1 on any mismatch with llama.cpp.

    python scripts/spm_tokenizer_vs_llama_cpp.py --llama-python /tmp/llvenv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import gguf

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import test_gguf_spm_tokenizer as cases  # noqa: E402

from axllm.build.gguf_tokenizer import build_tokenizer  # noqa: E402

LLAMA_TOKENIZE = """
import json, sys, llama_cpp
model = llama_cpp.Llama(sys.argv[1], vocab_only=True, verbose=False)
texts = json.load(sys.stdin)
json.dump([model.tokenize(t.encode(), add_bos=False, special=True) for t in texts], sys.stdout)
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--llama-python", default=sys.executable, help="a Python interpreter with llama-cpp-python installed"
    )
    args = parser.parse_args()
    sp = cases.train_spm()
    with tempfile.TemporaryDirectory() as tmp:
        path = cases.write_spm_gguf(Path(tmp) / "spm.gguf", sp)
        ours = build_tokenizer(gguf.GGUFReader(path))
        texts = cases.TEXTS
        r = subprocess.run(
            [args.llama_python, "-c", LLAMA_TOKENIZE, str(path)],
            input=json.dumps(texts),
            capture_output=True,
            text=True,
            check=True,
        )
        llama = json.loads(r.stdout)
    got = [ours.encode(t, add_special_tokens=False).ids for t in texts]
    vs_llama = [t for t, a, b in zip(texts, got, llama) if a != b]
    plain = [(t, a) for t, a in zip(texts, got) if cases.USER_DEFINED not in t]
    vs_sp = [t for t, a in plain if a != sp.encode(t)]
    print(
        f"{len(texts)} texts: {len(vs_llama)} differ from llama.cpp; "
        f"{len(vs_sp)} of {len(plain)} without user-defined tokens differ from sentencepiece"
    )
    for text in vs_llama[:5]:
        print("  llama.cpp differs on", repr(text))
    return 1 if vs_llama or vs_sp else 0


if __name__ == "__main__":
    sys.exit(main())
