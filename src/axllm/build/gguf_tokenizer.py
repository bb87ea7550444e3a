"""Hugging Face tokenizer files from the tokenizer a GGUF embeds, built with ``tokenizers`` only.

A GGUF stores its tokenizer as llama.cpp metadata: ``tokenizer.ggml.model`` (the algorithm),
``tokenizer.ggml.pre`` (the pre-tokenizer's name), the token strings, their types, the merges and
the special-token ids. :func:`write_tokenizer_files` turns that into ``tokenizer.json``,
``tokenizer_config.json`` and ``generation_config.json``.

Supported: ``tokenizer.ggml.model == "llama"`` (SentencePiece BPE with scores and byte fallback, as
in Llama 2, TinyLlama and Mistral; see :mod:`axllm.build.gguf_spm`; BOS is added unless the file
says otherwise), and ``tokenizer.ggml.model == "gpt2"`` (byte-level BPE) with ``tokenizer.ggml.pre``
one of

* ``qwen2``, ``deepseek-r1-qwen`` -- the Qwen2 split regex (single digits, ``\\s*[\\r\\n]+``);
* ``llama3``, ``llama-v3``, ``llama-bpe`` -- the Llama 3 regex (digits in runs of up to three).
  As in llama.cpp and Meta's own ``tokenizer.json``, a pre-token that is itself a vocabulary
  entry is taken whole (``ignore_merges``) and BOS is added unless the file says otherwise;
* ``smollm`` -- every ``\\p{N}`` character isolated first, then the GPT-2 regex (llama.cpp runs
  the two regexes in that order; SmolLM's own ``tokenizer.json`` does the same with
  ``Digits(individual_digits=True)`` before a regex ``ByteLevel``);
* ``gpt2``, ``gpt-2`` -- the GPT-2 regex;
* ``default``, or no ``tokenizer.ggml.pre`` key -- the GPT-2 regex, with a warning on the
  ``axllm`` logger: such files come from converters that did not record the split, and llama.cpp's
  own "default" split (punctuation runs and three-digit groups split out) is not what any original
  tokenizer did, so the GPT-2 regex is the best guess, not a certainty.

Any other ``pre`` name raises :class:`axllm.errors.UnsupportedModelError` rather than silently
guessing: a wrong split changes token ids without any visible error. Any other
``tokenizer.ggml.model`` (``bert``, ``t5``, ...) raises it too.

Token types (llama.cpp's ``token_type`` array): 3 (CONTROL) and 2 (UNKNOWN) become special added
tokens, 4 (USER_DEFINED) non-special added tokens; all are matched whole in raw text
(``normalized=False``), as llama.cpp does. Every token, whatever its type, keeps its GGUF id: the
BPE vocabulary holds all of them, so added tokens resolve to their own ids.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import gguf
import numpy as np
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors

from axllm.build.gguf_spm import spm_tokenizer
from axllm.errors import ModelLoadError, UnsupportedModelError

if TYPE_CHECKING:
    from tokenizers.pre_tokenizers import PreTokenizer

__all__ = ["build_tokenizer", "read_field", "write_tokenizer_files"]

logger = logging.getLogger("axllm")

# llama.cpp token types (gguf.TokenType).
_UNKNOWN = 2
_CONTROL = 3
_USER_DEFINED = 4

_GPT2_SPLIT = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
_LLAMA3_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)


@dataclass(frozen=True)
class _PreSpec:
    """How one ``tokenizer.ggml.pre`` value splits text, and its BPE and BOS defaults."""

    split: str
    digits_first: bool = False
    ignore_merges: bool = False
    add_bos_default: bool = False
    assumed: bool = False


_QWEN2 = _PreSpec(_QWEN2_SPLIT)
_LLAMA3 = _PreSpec(_LLAMA3_SPLIT, ignore_merges=True, add_bos_default=True)
_GPT2 = _PreSpec(_GPT2_SPLIT)
_DEFAULT = _PreSpec(_GPT2_SPLIT, assumed=True)

_PRE_SPECS: dict[str, _PreSpec] = {
    "qwen2": _QWEN2,
    "deepseek-r1-qwen": _QWEN2,
    "llama3": _LLAMA3,
    "llama-v3": _LLAMA3,
    "llama-bpe": _LLAMA3,
    "smollm": _PreSpec(_GPT2_SPLIT, digits_first=True),
    "gpt2": _GPT2,
    "gpt-2": _GPT2,
    "default": _DEFAULT,
}

# GGUF key suffix (after "tokenizer.ggml.") -> name used in configs and the returned dict.
_SPECIAL_IDS = {
    "bos_token_id": "bos",
    "eos_token_id": "eos",
    "padding_token_id": "pad",
    "unknown_token_id": "unk",
}


def read_field(reader: gguf.GGUFReader, key: str, default: Any = None) -> Any:
    """The value of metadata ``key``: ``str`` for strings, a Python scalar for numbers and bools,
    a ``list`` for arrays (of ``str`` or of scalars); ``default`` if the key is absent."""
    field = reader.fields.get(key)
    if field is None:
        return default
    kind = field.types[0]
    if kind == gguf.GGUFValueType.ARRAY:
        item_kind = field.types[-1] if len(field.types) > 1 else None
        if item_kind == gguf.GGUFValueType.STRING:
            return [bytes(field.parts[i]).decode("utf-8") for i in field.data]
        if not field.data:
            return []
        return np.concatenate([field.parts[i] for i in field.data]).tolist()
    if kind == gguf.GGUFValueType.STRING:
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    return field.parts[field.data[0]][0].item()


def _source(reader: gguf.GGUFReader) -> str:
    return str(getattr(reader.data, "filename", None) or "<gguf>")


def _pre_spec(reader: gguf.GGUFReader) -> _PreSpec:
    pre = read_field(reader, "tokenizer.ggml.pre", "default")
    spec = _PRE_SPECS.get(pre)
    if spec is None:
        raise UnsupportedModelError(
            f"{_source(reader)}: tokenizer.ggml.pre = {pre!r} is not a supported pre-tokenizer; "
            f"supported: {', '.join(sorted(_PRE_SPECS))}"
        )
    if spec.assumed:
        logger.warning("%s: tokenizer.ggml.pre is %r; assuming the GPT-2 split regex", _source(reader), pre)
    return spec


def _pre_tokenizer(spec: _PreSpec) -> PreTokenizer:
    steps: list[PreTokenizer] = []
    if spec.digits_first:
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    steps.append(pre_tokenizers.Split(Regex(spec.split), behavior="isolated", invert=False))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False))
    return pre_tokenizers.Sequence(steps)


@dataclass(frozen=True)
class _Vocab:
    tokens: list[str]
    types: list[int]
    ids: dict[str, int]  # token -> its GGUF id


def _read_vocab(reader: gguf.GGUFReader) -> _Vocab:
    source = _source(reader)
    tokens = read_field(reader, "tokenizer.ggml.tokens")
    if not tokens:
        raise ModelLoadError(f"{source}: tokenizer.ggml.tokens is missing or empty")
    # llama.cpp renames empty tokens the same way, so ids stay dense and strings unique.
    tokens = [t if t else f"[EMPTY_{i}]" for i, t in enumerate(tokens)]
    ids = {token: i for i, token in enumerate(tokens)}
    if len(ids) != len(tokens):
        seen: set[str] = set()
        for token in tokens:
            if token in seen:
                raise ModelLoadError(f"{source}: tokenizer.ggml.tokens lists {token!r} twice")
            seen.add(token)
    types = read_field(reader, "tokenizer.ggml.token_type")
    if types is None:
        types = [1] * len(tokens)
    if len(types) != len(tokens):
        raise ModelLoadError(
            f"{source}: tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens"
        )
    return _Vocab(tokens, [int(t) for t in types], ids)


def _read_merges(reader: gguf.GGUFReader) -> list[tuple[str, str]]:
    source = _source(reader)
    merges = read_field(reader, "tokenizer.ggml.merges")
    if merges is None:
        raise ModelLoadError(f"{source}: tokenizer.ggml.merges is missing (a gpt2 BPE needs it)")
    pairs = []
    for merge in merges:
        pair = merge.split(" ")
        if len(pair) != 2:
            raise ModelLoadError(f"{source}: tokenizer.ggml.merges entry {merge!r} is not 'a b'")
        pairs.append((pair[0], pair[1]))
    return pairs


def _special_ids(reader: gguf.GGUFReader, vocab_size: int) -> dict[str, int]:
    """``{"bos": id, ...}`` for the special ids the file sets; out-of-range ids are dropped with a
    warning, as llama.cpp does."""
    found = {}
    for key, name in _SPECIAL_IDS.items():
        value = read_field(reader, f"tokenizer.ggml.{key}")
        if value is None:
            continue
        if not 0 <= value < vocab_size:
            logger.warning(
                "%s: tokenizer.ggml.%s = %d is outside the vocabulary (%d tokens); ignored",
                _source(reader),
                key,
                value,
                vocab_size,
            )
            continue
        found[name] = int(value)
    return found


def _post_processor(
    bos: tuple[str, int] | None, eos: tuple[str, int] | None, byte_level: bool
) -> processors.PostProcessor | None:
    """ByteLevel offsets for byte-level BPE, then BOS/EOS around each sequence when the file asks
    for them (None when there is nothing to do)."""
    steps: list[processors.PostProcessor] = []
    if byte_level:
        steps.append(processors.ByteLevel(trim_offsets=False))
    if bos is None and eos is None:
        return steps[0] if steps else None

    def wrap(sequence: str, type_id: int) -> list[str]:
        head = [f"{bos[0]}:{type_id}"] if bos else []
        tail = [f"{eos[0]}:{type_id}"] if eos else []
        return [*head, f"${sequence}:{type_id}", *tail]

    used = list(dict.fromkeys(t for t in (bos, eos) if t is not None))
    steps.append(
        processors.TemplateProcessing(
            single=wrap("A", 0), pair=wrap("A", 0) + wrap("B", 1), special_tokens=used
        )
    )
    return steps[0] if len(steps) == 1 else processors.Sequence(steps)


@dataclass(frozen=True)
class _Built:
    tokenizer: Tokenizer
    special: dict[str, int]
    add_bos: bool
    add_eos: bool


def _byte_level_bpe(reader: gguf.GGUFReader, vocab: _Vocab) -> tuple[Tokenizer, bool]:
    """``tokenizer.ggml.model == "gpt2"``: the tokenizer and whether BOS is added by default."""
    spec = _pre_spec(reader)
    bpe = models.BPE(
        vocab=vocab.ids,
        merges=_read_merges(reader),
        fuse_unk=False,
        byte_fallback=False,
        ignore_merges=spec.ignore_merges,
    )
    tokenizer = Tokenizer(bpe)
    tokenizer.pre_tokenizer = _pre_tokenizer(spec)
    tokenizer.decoder = decoders.ByteLevel()
    return tokenizer, spec.add_bos_default


def _build(reader: gguf.GGUFReader) -> _Built:
    source = _source(reader)
    model = read_field(reader, "tokenizer.ggml.model")
    if model not in ("gpt2", "llama"):
        raise UnsupportedModelError(
            f"{source}: tokenizer.ggml.model = {model!r} is not supported; supported: "
            "'gpt2' (byte-level BPE), 'llama' (SentencePiece BPE)"
        )
    vocab = _read_vocab(reader)
    special = _special_ids(reader, len(vocab.tokens))
    if model == "gpt2":
        tokenizer, add_bos_default = _byte_level_bpe(reader, vocab)
    else:
        scores = read_field(reader, "tokenizer.ggml.scores")
        tokenizer = spm_tokenizer(
            vocab.tokens,
            vocab.ids,
            vocab.types,
            scores,
            special.get("unk"),
            bool(read_field(reader, "tokenizer.ggml.add_space_prefix", True)),
            source,
        )
        add_bos_default = True
    added = [
        AddedToken(token, special=kind != _USER_DEFINED, normalized=False)
        for token, kind in zip(vocab.tokens, vocab.types)
        if kind in (_UNKNOWN, _CONTROL, _USER_DEFINED)
    ]
    tokenizer.add_special_tokens([t for t in added if t.special])
    tokenizer.add_tokens([t for t in added if not t.special])
    for token in added:
        if tokenizer.token_to_id(token.content) != vocab.ids[token.content]:
            raise ModelLoadError(f"{source}: added token {token.content!r} lost its GGUF id")
    # An explicit flag wins; without one, BOS follows the pre-tokenizer's default (if the file
    # has a BOS id at all) and EOS is not added. A flag set without its id is a broken file.
    add_bos = read_field(reader, "tokenizer.ggml.add_bos_token")
    add_eos = read_field(reader, "tokenizer.ggml.add_eos_token")
    if add_bos and "bos" not in special:
        raise ModelLoadError(f"{source}: tokenizer.ggml.add_bos_token is set but no BOS id is")
    if add_eos and "eos" not in special:
        raise ModelLoadError(f"{source}: tokenizer.ggml.add_eos_token is set but no EOS id is")
    add_bos = bool(add_bos) if add_bos is not None else add_bos_default and "bos" in special
    add_eos = bool(add_eos)
    post = _post_processor(
        (vocab.tokens[special["bos"]], special["bos"]) if add_bos else None,
        (vocab.tokens[special["eos"]], special["eos"]) if add_eos else None,
        byte_level=model == "gpt2",
    )
    if post is not None:
        tokenizer.post_processor = post
    return _Built(tokenizer, special, add_bos, add_eos)


def build_tokenizer(reader: gguf.GGUFReader) -> Tokenizer:
    """The GGUF's tokenizer as a ``tokenizers.Tokenizer`` (what ``tokenizer.json`` holds).

    Raises ``UnsupportedModelError`` for an unsupported ``tokenizer.ggml.model`` or ``pre``, and
    ``ModelLoadError`` for malformed tokenizer metadata.
    """
    return _build(reader).tokenizer


def write_tokenizer_files(reader: gguf.GGUFReader, out_dir: Path) -> dict:
    """Write ``tokenizer.json``, ``tokenizer_config.json`` and ``generation_config.json`` for the
    GGUF's tokenizer into ``out_dir`` (created if missing; existing files are overwritten).

    Returns the special ids the file sets, as ``{"bos_token_id": int, "eos_token_id": int,
    "pad_token_id": int, "unk_token_id": int}`` restricted to the keys present. Raises like
    :func:`build_tokenizer`.
    """
    built = _build(reader)
    tokenizer = built.tokenizer
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(out_dir / "tokenizer.json"), pretty=False)

    config: dict[str, Any] = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "add_bos_token": built.add_bos,
        "add_eos_token": built.add_eos,
        "clean_up_tokenization_spaces": False,
    }
    for name, token_id in built.special.items():
        config[f"{name}_token"] = tokenizer.id_to_token(token_id)
    architecture = read_field(reader, "general.architecture")
    context_length = read_field(reader, f"{architecture}.context_length") if architecture else None
    if context_length is not None:
        config["model_max_length"] = int(context_length)
    chat_template = read_field(reader, "tokenizer.chat_template")
    if chat_template is not None:
        config["chat_template"] = chat_template
    _write_json(out_dir / "tokenizer_config.json", config)

    ids = {f"{name}_token_id": token_id for name, token_id in built.special.items()}
    generation: dict[str, Any] = {
        k: ids[k] for k in ("bos_token_id", "eos_token_id", "pad_token_id") if k in ids
    }
    _write_json(out_dir / "generation_config.json", generation)
    return ids


def _write_json(path: Path, value: dict[str, Any]) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
