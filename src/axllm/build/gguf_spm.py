"""The ``tokenizers`` pipeline for a GGUF whose ``tokenizer.ggml.model`` is ``"llama"``: a
SentencePiece BPE vocabulary (Llama 1/2, TinyLlama, Mistral, Vicuna ...) stored as llama.cpp
stores it (piece strings with ``▁`` for a space, a score per piece, a type per piece).

SentencePiece BPE encodes by repeatedly merging the adjacent pair of symbols whose concatenation
is a piece of the vocabulary with the highest score (leftmost first on a tie); characters that
are not pieces become their UTF-8 bytes as ``<0xNN>`` pieces (byte fallback). The same result
comes from a ``tokenizers`` BPE model whose merge list holds, for every NORMAL piece, each split
into two NORMAL pieces, ranked by the merged piece's score, for every vocabulary whose pieces
are built from pieces and have distinct scores, as trained SentencePiece BPE vocabularies are;
:func:`spm_caveats` names what breaks that, and the conversion logs it as a warning. Text is prepared
as llama.cpp does:
spaces become ``▁`` and, unless ``tokenizer.ggml.add_space_prefix`` is false, each run of text
between special tokens gets one ``▁`` in front (the "dummy prefix"); decoding reverses both.

Token types (llama.cpp's ``token_type``): 1 NORMAL pieces take part in merges; 6 BYTE pieces serve
the byte fallback; 2 UNKNOWN, 3 CONTROL and 4 USER_DEFINED are matched whole by the caller as
added tokens; 5 UNUSED pieces are never produced.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from tokenizers import Tokenizer, decoders, models, normalizers

from axllm.errors import ModelLoadError

__all__ = ["spm_caveats", "spm_merges", "spm_tokenizer"]

logger = logging.getLogger("axllm")

SPACE = "\u2581"  # "▁", SentencePiece's spelling of a space
_NORMAL = 1
_UNKNOWN = 2
_UNUSED = 5


def spm_merges(tokens: Sequence[str], types: Sequence[int], scores: Sequence[float]) -> list[tuple[str, str]]:
    """Every split of a NORMAL piece into two NORMAL pieces, best merged-piece score first (ties:
    lower merged id, then the split further left)."""
    normal = {token: i for i, token in enumerate(tokens) if types[i] == _NORMAL}
    ranked = []
    for piece, merged in normal.items():
        for cut in range(1, len(piece)):
            if piece[:cut] in normal and piece[cut:] in normal:
                ranked.append((-scores[merged], merged, cut))
    ranked.sort()
    return [(tokens[merged][:cut], tokens[merged][cut:]) for _, merged, cut in ranked]


def spm_caveats(tokens: Sequence[str], types: Sequence[int], scores: Sequence[float]) -> list[str]:
    """What in this vocabulary can make the merge list encode differently from SentencePiece
    (none of it occurs in the Llama 2, TinyLlama or Mistral vocabularies): NORMAL pieces that no
    split into two NORMAL pieces reaches (SentencePiece can build them from characters that are
    not pieces, a merge list cannot), merged pieces sharing a score (SentencePiece merges the
    leftmost pair first, the merge list the lower id), and UNUSED pieces SentencePiece may pass
    through while merging."""
    normal = {token: i for i, token in enumerate(tokens) if types[i] == _NORMAL}
    unreachable: list[str] = []
    merged_scores: dict[float, list[str]] = {}
    for piece, i in normal.items():
        if len(piece) < 2:
            continue
        if any(piece[:cut] in normal and piece[cut:] in normal for cut in range(1, len(piece))):
            merged_scores.setdefault(scores[i], []).append(piece)
        else:
            unreachable.append(piece)
    tied = [pieces for pieces in merged_scores.values() if len(pieces) > 1]
    unused = [t for t, kind in zip(tokens, types) if kind == _UNUSED and len(t) > 1]
    caveats = []
    if unreachable:
        caveats.append(f"{len(unreachable)} pieces no merge of two pieces produces (e.g. {unreachable[0]!r})")
    if tied:
        caveats.append(
            f"{sum(map(len, tied))} merged pieces sharing a score with another (e.g. {tied[0][:2]!r})"
        )
    if unused:
        caveats.append(f"{len(unused)} UNUSED multi-character pieces (e.g. {unused[0]!r})")
    return caveats


def spm_tokenizer(
    tokens: Sequence[str],
    ids: dict[str, int],
    types: Sequence[int],
    scores: Sequence[float] | None,
    unk_id: int | None,
    add_space_prefix: bool,
    source: str,
) -> Tokenizer:
    """A ``Tokenizer`` encoding and decoding as SentencePiece BPE over ``tokens`` (``ids`` maps
    each token to its position). Added tokens are the caller's to register. Raises
    ``ModelLoadError`` naming ``source`` when the scores are missing or do not match the tokens."""
    if scores is None:
        raise ModelLoadError(
            f"{source}: tokenizer.ggml.scores is missing (a llama SentencePiece vocabulary needs it)"
        )
    if len(scores) != len(tokens):
        raise ModelLoadError(
            f"{source}: tokenizer.ggml.scores has {len(scores)} entries for {len(tokens)} tokens"
        )
    if unk_id is None:
        unk_id = next((i for i, kind in enumerate(types) if kind == _UNKNOWN), None)
    for caveat in spm_caveats(tokens, types, scores):
        logger.warning(
            "%s: the SentencePiece vocabulary has %s; some texts may not tokenize as "
            "sentencepiece and llama.cpp tokenize them",
            source,
            caveat,
        )
    bpe = models.BPE(
        vocab=ids,
        merges=spm_merges(tokens, types, scores),
        unk_token=tokens[unk_id] if unk_id is not None else None,
        fuse_unk=True,
        byte_fallback=True,
    )
    tokenizer = Tokenizer(bpe)
    spaces = normalizers.Replace(" ", SPACE)
    steps = [decoders.Replace(SPACE, " "), decoders.ByteFallback(), decoders.Fuse()]
    if add_space_prefix:
        tokenizer.normalizer = normalizers.Sequence([normalizers.Prepend(SPACE), spaces])
        steps.append(decoders.Strip(content=" ", left=1, right=0))
    else:
        tokenizer.normalizer = spaces
    tokenizer.decoder = decoders.Sequence(steps)
    return tokenizer
