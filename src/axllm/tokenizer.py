"""Text to token ids and back, from the Hugging Face tokenizer files in a model directory.

:meth:`Tokenizer.from_dir` reads ``tokenizer.json`` (required) plus, when present,
``tokenizer_config.json``, ``special_tokens_map.json`` and ``generation_config.json``, and
reproduces what ``transformers.AutoTokenizer.from_pretrained(dir)`` (transformers 5.x, generic
``PreTrainedTokenizerFast`` / ``TokenizersBackend`` class) makes of them:

* ``tokenizer.json`` is authoritative for the split, the model, the decoder and the post-processor.
  In particular BOS/EOS insertion is whatever its ``post_processor`` does: when ``tokenizer.json``
  exists, transformers drops ``add_bos_token`` / ``add_eos_token`` from ``tokenizer_config.json``
  before building the tokenizer, so those flags change nothing (a Llama-3 ``TemplateProcessing``
  adds BOS even with ``add_bos_token: false``; a ``ByteLevel`` post-processor adds none even with
  ``add_bos_token: true``).
* Named special tokens (``bos_token``, ``eos_token``, ``unk_token``, ``sep_token``,
  ``pad_token``, ``cls_token``, ``mask_token``, other ``*_token`` string keys, and the
  ``extra_special_tokens`` / ``additional_special_tokens`` list) become special added tokens:
  one already in ``tokenizer.json``'s added tokens is re-registered with ``special=True`` (so
  ``skip_special_tokens`` drops it) and its other flags kept; one missing from them is added with
  ``special=True, normalized=False`` -- even when it is an ordinary vocabulary entry, which then
  matches whole in text. Tokens new to the vocabulary get the next free ids in that order.
  ``special_tokens_map.json`` overrides the named values only when ``tokenizer_config.json`` has
  no ``added_tokens_decoder`` (as in transformers); entries of ``added_tokens_decoder`` are
  re-registered with their flags.
* ``split_special_tokens: true`` makes special tokens in text encode as plain text.
* Truncation and padding configured in ``tokenizer.json`` are disabled.
* Decoding applies transformers' ``clean_up_tokenization`` only when the config sets
  ``clean_up_tokenization_spaces`` and the model is not BPE (transformers 5 ignores the flag for
  BPE unless ``clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output`` is set).

Model-specific tokenizer classes that rebuild the tokenizer from its vocabulary (e.g.
``tokenizer_class: GPT2Tokenizer``) can split differently in transformers; this module always
follows ``tokenizer.json``.
"""

from __future__ import annotations

import json
import operator
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from tokenizers import AddedToken
from tokenizers import Tokenizer as _Backend

from axllm.errors import ModelLoadError

__all__ = ["Detokenizer", "Tokenizer"]

_NAMED_SPECIAL = (
    "bos_token",
    "eos_token",
    "unk_token",
    "sep_token",
    "pad_token",
    "cls_token",
    "mask_token",
)
_ADDED_TOKEN_FLAGS = ("single_word", "lstrip", "rstrip", "normalized", "special")
_REPLACEMENT = "\ufffd"
# A byte-fallback piece: the ByteFallback decoder turns a run of them into the UTF-8 text of their
# bytes, or into one U+FFFD per piece when the run as a whole is not valid UTF-8.
_BYTE_PIECE = re.compile(r"<0x[0-9A-Fa-f]{2}>")
# transformers' clean_up_tokenization, applied in this order to the whole decoded text.
_CLEANUP = (
    (" .", "."),
    (" ?", "?"),
    (" !", "!"),
    (" ,", ","),
    (" ' ", "'"),
    (" n't", "n't"),
    (" 'm", "'m"),
    (" 's", "'s"),
    (" 've", "'ve"),
    (" 're", "'re"),
)


def _read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``; ``None`` if the file does not exist."""
    if not path.is_file():
        return None
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ModelLoadError(f"{path}: cannot read JSON: {e}") from e
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def _token_value(value: Any, source: Path, key: str, *, force_special: bool = False) -> str | AddedToken:
    """A special-token entry from a config: a plain string, or an ``AddedToken`` for the
    serialised ``{"content": ..., "lstrip": ..., ...}`` form; ModelLoadError for anything else."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and isinstance(value.get("content"), str):
        flags = {k: bool(value[k]) for k in _ADDED_TOKEN_FLAGS if k in value}
        if force_special:
            flags["special"] = True
        return AddedToken(value["content"], **flags)
    raise ModelLoadError(f"{source}: {key} must be a string or a token object, found {value!r}")


def _with_special(token: AddedToken) -> AddedToken:
    return AddedToken(
        token.content,
        single_word=token.single_word,
        lstrip=token.lstrip,
        rstrip=token.rstrip,
        normalized=token.normalized,
        special=True,
    )


def _clean_up(text: str) -> str:
    for old, new in _CLEANUP:
        text = text.replace(old, new)
    return text


class _StreamingReplace:
    """``str.replace(old, new)`` over text that arrives in pieces: the concatenated output of
    :meth:`feed` calls and :meth:`flush` equals one ``replace`` on the concatenated input (a
    left-to-right scan for non-overlapping matches only needs to hold back a suffix that could
    still become ``old``)."""

    def __init__(self, old: str, new: str) -> None:
        self._old = old
        self._new = new
        self._held = ""

    def feed(self, text: str) -> str:
        buffer = self._held + text
        out = []
        start = 0
        while (found := buffer.find(self._old, start)) >= 0:
            out.append(buffer[start:found])
            out.append(self._new)
            start = found + len(self._old)
        rest = buffer[start:]
        keep = next(
            (k for k in range(min(len(rest), len(self._old) - 1), 0, -1) if self._old.startswith(rest[-k:])),
            0,
        )
        self._held = rest[len(rest) - keep :]
        out.append(rest[: len(rest) - keep])
        return "".join(out)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return held


class _StreamingCleanUp:
    """transformers' ``clean_up_tokenization`` (a sequence of replaces) over streamed text."""

    def __init__(self) -> None:
        self._stages = [_StreamingReplace(old, new) for old, new in _CLEANUP]

    def feed(self, text: str) -> str:
        for stage in self._stages:
            text = stage.feed(text)
        return text

    def flush(self) -> str:
        text = ""
        for stage in self._stages:
            text = stage.feed(text) + stage.flush()
        return text


class Tokenizer:
    """A loaded tokenizer. Build with :meth:`from_dir`; the instance is read-only afterwards."""

    vocab_size: int
    """Number of ids, added tokens included (highest id + 1)."""
    bos_token: str | None
    eos_token: str | None
    pad_token: str | None
    bos_token_id: int | None
    eos_token_ids: list[int]
    """Ids that end generation: ``generation_config.json``'s ``eos_token_id`` (int or list), then
    the id of ``tokenizer_config.json``'s ``eos_token``; in that order, without repeats."""

    def __init__(
        self, backend: _Backend, *, special: dict[str, str], eos_token_ids: list[int], clean_up: bool
    ) -> None:
        """Prefer :meth:`from_dir`. ``backend`` is used as given (and must not be changed later);
        ``special`` maps names like ``"bos_token"`` to token strings."""
        self._backend = backend
        self._clean_up = clean_up
        self.bos_token = special.get("bos_token")
        self.eos_token = special.get("eos_token")
        self.pad_token = special.get("pad_token")
        self.bos_token_id = backend.token_to_id(self.bos_token) if self.bos_token else None
        self.eos_token_ids = list(dict.fromkeys(eos_token_ids))
        vocab = backend.get_vocab(with_added_tokens=True)
        self.vocab_size = max(vocab.values()) + 1 if vocab else 0
        self._special_ids = frozenset(i for i, t in backend.get_added_tokens_decoder().items() if t.special)
        byte_fallback = getattr(backend.model, "byte_fallback", False)
        self._byte_piece_ids = frozenset(
            i
            for token, i in vocab.items()
            if byte_fallback and token.startswith("<0x") and _BYTE_PIECE.fullmatch(token)
        )

    @classmethod
    def from_dir(cls, directory: str | os.PathLike) -> Tokenizer:
        """Load the tokenizer files in ``directory`` (see the module docstring for the rules).

        Raises ``ModelLoadError`` naming the file when ``tokenizer.json`` is missing or unreadable,
        or when a config file present is not valid JSON or has a malformed special-token entry.
        """
        directory = Path(directory)
        tokenizer_file = directory / "tokenizer.json"
        if not tokenizer_file.is_file():
            raise ModelLoadError(f"{tokenizer_file}: tokenizer.json not found")
        try:
            backend = _Backend.from_file(str(tokenizer_file))
        except Exception as e:  # the tokenizers package raises a bare Exception on bad input
            raise ModelLoadError(f"{tokenizer_file}: cannot load tokenizer: {e}") from e
        backend.no_truncation()
        backend.no_padding()

        config_file = directory / "tokenizer_config.json"
        config = _read_json(config_file) or {}
        special_tokens_map_file = directory / "special_tokens_map.json"
        generation_file = directory / "generation_config.json"
        generation = _read_json(generation_file) or {}

        named, extras, registered = cls._special_tokens(backend, config, config_file, special_tokens_map_file)
        cls._register(backend, named, extras, registered)
        if config.get("split_special_tokens"):
            backend.encode_special_tokens = True

        special = {key: str(value) for key, value in named.items()}
        eos_ids = cls._generation_eos(generation, generation_file)
        eos_token = special.get("eos_token")
        eos_id = backend.token_to_id(eos_token) if eos_token is not None else None
        if eos_id is not None:
            eos_ids.append(eos_id)
        is_bpe = type(backend.model).__name__ == "BPE"
        force_for_bpe = config.get("clean_up_tokenization_spaces_for_bpe_even_though_it_will_corrupt_output")
        clean_up = bool(config.get("clean_up_tokenization_spaces")) and (not is_bpe or bool(force_for_bpe))
        return cls(backend, special=special, eos_token_ids=eos_ids, clean_up=clean_up)

    @staticmethod
    def _special_tokens(
        backend: _Backend, config: dict[str, Any], config_file: Path, special_tokens_map_file: Path
    ) -> tuple[dict[str, str | AddedToken], list[str | AddedToken], list[AddedToken]]:
        """(named special tokens by key, extra special tokens, added tokens to re-register)."""
        named: dict[str, str | AddedToken] = {}
        for key in _NAMED_SPECIAL:
            if config.get(key) is not None:
                named[key] = _token_value(config[key], config_file, key)
        for key, value in config.items():
            if (
                key.endswith("_token")
                and key not in named
                and (isinstance(value, str) or isinstance(value, dict) and "content" in value)
            ):
                named[key] = _token_value(value, config_file, key)
        raw_extras = config.get("extra_special_tokens") or config.get("additional_special_tokens")
        extras: list[str | AddedToken] = []
        if isinstance(raw_extras, dict):
            for key, value in raw_extras.items():
                named.setdefault(key, _token_value(value, config_file, key))
        elif isinstance(raw_extras, list):
            extras = [_token_value(v, config_file, "extra_special_tokens") for v in raw_extras]
        elif raw_extras is not None:
            raise ModelLoadError(
                f"{config_file}: extra_special_tokens must be a list or an object, "
                f"found {type(raw_extras).__name__}"
            )

        decoder = config.get("added_tokens_decoder")
        if decoder is not None:
            if not isinstance(decoder, dict):
                raise ModelLoadError(f"{config_file}: added_tokens_decoder must be an object")
            registered = []
            if not all(isinstance(k, str) and k.isdigit() for k in decoder):
                raise ModelLoadError(f"{config_file}: added_tokens_decoder keys must be ids")
            for key in sorted(decoder, key=int):
                token = _token_value(decoder[key], config_file, f"added_tokens_decoder[{key}]")
                if not isinstance(token, AddedToken):
                    raise ModelLoadError(f"{config_file}: added_tokens_decoder[{key}] must be a token object")
                registered.append(token)
        else:
            # Legacy layout: special_tokens_map.json overrides the named values, and the added
            # tokens of tokenizer.json are the ones re-registered.
            legacy = _read_json(special_tokens_map_file) or {}
            for key, value in legacy.items():
                if key in ("extra_special_tokens", "additional_special_tokens"):
                    if isinstance(value, list):
                        for v in value:
                            token = _token_value(v, special_tokens_map_file, key, force_special=True)
                            if str(token) not in {str(e) for e in extras}:
                                extras.append(token)
                elif isinstance(value, (str, dict)):
                    named[key] = _token_value(value, special_tokens_map_file, key, force_special=True)
            registered = [t for _, t in sorted(backend.get_added_tokens_decoder().items())]
        # A named value spelled as a plain string takes the flags of the added token it names.
        by_content = {t.content: t for t in registered}
        for key, value in named.items():
            if isinstance(value, str) and value in by_content:
                named[key] = by_content[value]
        return named, extras, registered

    @staticmethod
    def _register(
        backend: _Backend,
        named: dict[str, str | AddedToken],
        extras: list[str | AddedToken],
        registered: list[AddedToken],
    ) -> None:
        """Re-register the added tokens and add missing special ones, as transformers'
        ``TokenizersBackend.__init__`` does (named tokens are forced special)."""
        named_strings = {str(v) for v in named.values()}
        tokens = [_with_special(t) if t.content in named_strings and not t.special else t for t in registered]
        known = {t.content for t in backend.get_added_tokens_decoder().values()}
        known.update(t.content for t in tokens)
        for value in [*named.values(), *extras]:
            if str(value) in known:
                continue
            if isinstance(value, str):
                token = AddedToken(value, special=True, normalized=False)
            elif str(value) in named_strings and not value.special:
                token = _with_special(value)
            else:
                token = value
            tokens.append(token)
            known.add(token.content)
        if tokens:
            backend.add_tokens(tokens)

    @staticmethod
    def _generation_eos(generation: dict[str, Any], source: Path) -> list[int]:
        value = generation.get("eos_token_id")
        if value is None:
            return []
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in values):
            raise ModelLoadError(
                f"{source}: eos_token_id must be a non-negative int or a list of them, found {value!r}"
            )
        return list(values)

    def encode(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """Token ids of ``text``; with ``add_special_tokens`` the post-processor's BOS/EOS (if
        any) are added. Special tokens written in ``text`` map to their own ids."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, not {type(text).__name__}")
        return self._backend.encode(text, add_special_tokens=add_special_tokens).ids

    def decode(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """The text of ``ids``; special tokens are dropped when ``skip_special_tokens``. Ids
        outside the vocabulary decode to nothing, as in transformers."""
        text = self._decode_raw(ids, skip_special_tokens)
        return _clean_up(text) if self._clean_up else text

    def _decode_raw(self, ids: Sequence[int], skip_special_tokens: bool) -> str:
        """The backend's decode, without transformers' clean-up."""
        try:
            return self._backend.decode(list(ids), skip_special_tokens=skip_special_tokens)
        except (OverflowError, TypeError) as e:
            raise ValueError(f"token ids must be non-negative ints: {e}") from e

    def token_to_id(self, token: str) -> int | None:
        return self._backend.token_to_id(token)

    def id_to_token(self, i: int) -> str | None:
        if i < 0:
            return None
        return self._backend.id_to_token(i)

    def detokenizer(self, *, skip_special_tokens: bool = True) -> Detokenizer:
        """A fresh incremental decoder for one stream of ids."""
        return Detokenizer(self, skip_special_tokens=skip_special_tokens)


class Detokenizer:
    """Turns a stream of token ids into text, chunk by chunk.

    Contract: ``"".join(push(i) for i in ids) + flush() == tokenizer.decode(ids)`` (same
    ``skip_special_tokens``); no chunk ends inside a UTF-8 sequence, and a U+FFFD that only
    appears because a character's bytes are split across tokens is never emitted.

    What is held back, and why:

    * text ending in U+FFFD, until a later token resolves it or :meth:`flush` releases it (an
      incomplete UTF-8 sequence decodes to U+FFFD);
    * a run of byte-fallback pieces (``<0xNN>``), until a non-byte token closes it: the
      ByteFallback decoder turns the whole run into U+FFFD, one per piece, when any byte of it is
      invalid, so even its valid start is not final before the run ends;
    * for tokenizers whose decode runs transformers' space clean-up, a trailing fragment (``" "``,
      ``" n'"`` ...) that clean-up could still change (the clean-up's replaces run on the stream).

    Ids that decode drops (special tokens when skipping them, ids outside the vocabulary) are
    ignored. Each push decodes only a short window: the tokens not yet fully emitted plus, as
    left context, those completed by the previous emission (decoders such as Metaspace treat the
    first token specially, so new text is the difference between decoding the window and
    decoding its context). A run of more than ``MAX_HELD`` tokens that all keep the text ending
    in U+FFFD (literal U+FFFD characters or invalid bytes; a split character resolves within 4
    bytes) is released up to its last ``KEEP`` tokens, so a push costs O(1) amortized.
    """

    MAX_HELD = 16
    KEEP = 4

    def __init__(self, tokenizer: Tokenizer, *, skip_special_tokens: bool = True) -> None:
        self._tokenizer = tokenizer
        self._skip = skip_special_tokens
        self._reset()

    def _reset(self) -> None:
        self._clean_up = _StreamingCleanUp() if self._tokenizer._clean_up else None
        self._ids: list[int] = []
        # The first `_context` ids of the window are context only: their text was emitted.
        self._context = 0
        # How many characters of decode(window) have been returned.
        self._emitted = 0

    def _decode(self, ids: Sequence[int]) -> str:
        return self._tokenizer._decode_raw(ids, self._skip)

    def _emit(self, text: str) -> str:
        return self._clean_up.feed(text) if self._clean_up is not None and text else text

    def _rebase(self, cut: int, head_length: int) -> None:
        """Drop the context: the window becomes ids[context:], and ids[context:cut] (text fully
        emitted, ``head_length`` characters of the old window) its new context."""
        new_context = self._ids[self._context : cut]
        self._emitted += len(self._decode(new_context)) - head_length
        self._ids = self._ids[self._context :]
        self._context = len(new_context)

    def push(self, token_id: int) -> str:
        """Add one id; returns the text it completed (often ``""``)."""
        token_id = operator.index(token_id)
        if token_id < 0:
            raise ValueError(f"token id must be non-negative, got {token_id}")
        if (
            self._skip
            and token_id in self._tokenizer._special_ids
            or self._tokenizer.id_to_token(token_id) is None
        ):
            return ""  # decode drops these ids without affecting their neighbours
        self._ids.append(token_id)
        if token_id in self._tokenizer._byte_piece_ids:
            return ""  # an open byte-fallback group: its text is decided when the group closes
        text = self._decode(self._ids)
        stable = len(text.rstrip(_REPLACEMENT))
        out = ""
        if stable > self._emitted:
            out = text[self._emitted : stable]
            self._emitted = stable
        if stable == len(text):
            self._rebase(len(self._ids), len(text))
        elif len(self._ids) - self._context > self.MAX_HELD:
            cut = max(self._context, len(self._ids) - self.KEEP)
            head = self._decode(self._ids[:cut])
            if text.startswith(head):
                if len(head) > self._emitted:
                    out += head[self._emitted :]
                    self._emitted = len(head)
                self._rebase(cut, len(head))
        return self._emit(out)

    def flush(self) -> str:
        """End of stream: everything held back (a trailing invalid sequence as U+FFFD). The
        detokenizer is then empty and can start a new stream."""
        text = self._decode(self._ids)
        out = self._emit(text[self._emitted :])
        if self._clean_up is not None:
            out += self._clean_up.flush()
        self._reset()
        return out
