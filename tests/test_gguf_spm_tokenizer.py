"""Tokenizer files exported from a GGUF holding a SentencePiece vocabulary (tokenizer.ggml.model
"llama": Llama 2, TinyLlama, Mistral).

The GGUF is written here from a SentencePiece BPE model trained on the fly with Llama's settings
(byte fallback, identity normalization, dummy prefix, digits split, whitespace-only pieces), the
way llama.cpp's converter stores one: piece strings, scores and types. The reference is the
sentencepiece library encoding and decoding with the original model, on random text (words,
runs of spaces, newlines, digits, characters outside the vocabulary that fall back to bytes).
Text around user-defined and special tokens follows llama.cpp's rule (each run of text between
them is encoded on its own), checked once against llama-cpp-python on the same texts.
"""

from __future__ import annotations

import io
import logging
import random
import re
from pathlib import Path

import gguf
import pytest
import sentencepiece as spm
from helpers.gguf_files import save_gguf

from axllm.build.gguf_spm import spm_caveats, spm_merges
from axllm.build.gguf_tokenizer import build_tokenizer, write_tokenizer_files
from axllm.errors import ModelLoadError
from axllm.tokenizer import Tokenizer

WORDS = (
    "the quick brown fox jumps over lazy dog hello world tokenizer llama model paris france "
    "capital what is of and a an to in on for with 42 2024 3.14 naïve café über straße"
).split()
USER_DEFINED = "<tool>"
# Pieces the training text never shows: they reach the tokenizer only through byte fallback.
RARE = ["中文", "😀", "👍🏽", "Ωμέγα", "\t", "ß", "ñ", "\u00a0", "€5", "7", "9"]
TEMPLATE = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}</s>{% endfor %}"


def corpus(rng: random.Random, lines: int) -> list[str]:
    out = []
    for _ in range(lines):
        parts = []
        for _ in range(rng.randint(3, 20)):
            word = rng.choice(WORDS)
            if rng.random() < 0.1:
                word = word.capitalize()
            if rng.random() < 0.1:
                word += rng.choice(".,!?:")
            parts.append(word)
        out.append(rng.choice([" ", " ", "  "]).join(parts))
    return out


def random_texts(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pools = [WORDS, RARE, [" ", "  ", "   ", "\n", "\n\n", " \n ", ""], [USER_DEFINED]]
    texts = []
    for _ in range(count):
        pieces = [rng.choice(rng.choices(pools, weights=[8, 2, 3, 1])[0]) for _ in range(rng.randint(1, 14))]
        texts.append("".join(p + rng.choice(["", " ", " "]) for p in pieces))
    return texts


def train_spm() -> spm.SentencePieceProcessor:
    """A SentencePiece BPE model trained on ``corpus`` with Llama's settings (600 pieces)."""
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus(random.Random(1), 3000)),
        model_writer=model,
        model_type="bpe",
        vocab_size=600,
        byte_fallback=True,
        normalization_rule_name="identity",
        add_dummy_prefix=True,
        remove_extra_whitespaces=False,
        split_digits=True,
        allow_whitespace_only_pieces=True,
        character_coverage=1.0,
        user_defined_symbols=[USER_DEFINED],
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=-1,
        minloglevel=2,
        num_threads=1,
    )
    return spm.SentencePieceProcessor(model_proto=model.getvalue())


@pytest.fixture(scope="module")
def sp():
    return train_spm()


def piece_type(sp, i: int) -> int:
    """llama.cpp's token type of piece ``i``."""
    if sp.is_unknown(i):
        return 2
    if sp.is_control(i):
        return 3
    if sp.is_byte(i):
        return 6
    if sp.is_unused(i):
        return 5
    return 4 if sp.id_to_piece(i) == USER_DEFINED else 1


def write_spm_gguf(path: Path, sp, *, add_space_prefix: bool | None = None, scores: bool = True) -> Path:
    n = sp.get_piece_size()
    writer = gguf.GGUFWriter(path, "llama")
    writer.add_context_length(2048)
    writer.add_tokenizer_model("llama")
    writer.add_token_list([sp.id_to_piece(i) for i in range(n)])
    if scores:
        writer.add_token_scores([sp.get_score(i) for i in range(n)])
    writer.add_token_types([piece_type(sp, i) for i in range(n)])
    writer.add_bos_token_id(sp.bos_id())
    writer.add_eos_token_id(sp.eos_id())
    writer.add_unk_token_id(sp.unk_id())
    if add_space_prefix is not None:
        writer.add_add_space_prefix(add_space_prefix)
    writer.add_chat_template(TEMPLATE)
    save_gguf(writer)
    return path


@pytest.fixture(scope="module")
def exported(sp, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("spm")
    out = tmp / "out"
    ids = write_tokenizer_files(gguf.GGUFReader(write_spm_gguf(tmp / "spm.gguf", sp)), out)
    return Tokenizer.from_dir(out), ids, out


TEXTS = random_texts(400, seed=7)


def llama_cpp_ids(sp, text: str) -> list[int]:
    """What llama.cpp makes of ``text`` (checked against llama-cpp-python 0.3.36 on these 400
    texts): user-defined and special tokens are cut out first, and each run of text between them
    is encoded as sentencepiece encodes a whole text, dummy prefix included."""
    out: list[int] = []
    for part in re.split(f"({re.escape(USER_DEFINED)})", text):
        if part == USER_DEFINED:
            out.append(sp.piece_to_id(USER_DEFINED))
        elif part:
            out += sp.encode(part)
    return out


def test_encoding_equals_sentencepiece(sp, exported):
    tok, _, _ = exported
    assert any("<0x" in sp.id_to_piece(i) for t in TEXTS for i in sp.encode(t)), "no byte fallback exercised"
    assert any("  " in t for t in TEXTS) and any("\n" in t for t in TEXTS)
    plain = [t for t in TEXTS if USER_DEFINED not in t]
    assert len(plain) > 100
    mismatches = [
        (t, tok.encode(t, add_special_tokens=False), sp.encode(t))
        for t in plain
        if tok.encode(t, add_special_tokens=False) != sp.encode(t)
    ]
    assert not mismatches, mismatches[:3]


def test_user_defined_tokens_split_the_text_as_llama_cpp_does(sp, exported):
    tok, _, _ = exported
    mixed = [t for t in TEXTS if USER_DEFINED in t]
    assert len(mixed) > 50
    mismatches = [
        (t, tok.encode(t, add_special_tokens=False), llama_cpp_ids(sp, t))
        for t in mixed
        if tok.encode(t, add_special_tokens=False) != llama_cpp_ids(sp, t)
    ]
    assert not mismatches, mismatches[:3]


def test_decoding_equals_sentencepiece(sp, exported):
    tok, _, _ = exported
    for text in TEXTS:
        ids = sp.encode(text)
        assert tok.decode(ids) == sp.decode(ids), text


def test_streaming_text_equals_the_whole_decode(sp, exported):
    tok, _, _ = exported
    for text in TEXTS[:100]:
        ids = sp.encode(text)
        stream = tok.detokenizer()
        assert "".join(stream.push(i) for i in ids) + stream.flush() == sp.decode(ids), text


def test_bos_added_by_default_and_special_ids(sp, exported):
    tok, ids, out = exported
    assert tok.encode("hello world") == [sp.bos_id(), *sp.encode("hello world")]
    assert ids == {"bos_token_id": 1, "eos_token_id": 2, "unk_token_id": 0}
    assert tok.eos_token_ids == [2]
    assert (out / "tokenizer_config.json").read_text().count('"add_bos_token": true') == 1


def test_special_tokens_are_matched_whole(sp, exported):
    tok, _, _ = exported
    assert tok.encode("</s>", add_special_tokens=False) == [sp.eos_id()]
    # After a special token the text gets its own space prefix, as llama.cpp tokenizes it.
    assert tok.encode("</s>hello", add_special_tokens=False) == [sp.eos_id(), *sp.encode("hello")]
    assert tok.decode([sp.eos_id(), *sp.encode("hello")], skip_special_tokens=True) == "hello"


def test_chat_template_comes_along(exported):
    _, _, out = exported
    assert TEMPLATE in (out / "tokenizer_config.json").read_text()


def test_no_space_prefix_when_the_file_says_so(sp, tmp_path):
    tok = build_tokenizer(gguf.GGUFReader(write_spm_gguf(tmp_path / "np.gguf", sp, add_space_prefix=False)))
    assert tok.encode(" hello", add_special_tokens=False).ids == sp.encode("hello")
    assert tok.encode("hello", add_special_tokens=False).tokens[0] != sp.id_to_piece(sp.encode("hello")[0])
    for text in (" hello world", "hello", "  two spaces"):
        assert tok.decode(tok.encode(text, add_special_tokens=False).ids) == text


def test_missing_scores_is_a_clear_error(sp, tmp_path):
    path = write_spm_gguf(tmp_path / "ns.gguf", sp, scores=False)
    with pytest.raises(ModelLoadError, match=r"ns\.gguf: tokenizer\.ggml\.scores is missing"):
        build_tokenizer(gguf.GGUFReader(path))


def test_merges_rank_by_merged_piece_score():
    tokens = ["a", "b", "c", "ab", "bc", "abc", "<0x41>", "<x>"]
    types = [1, 1, 1, 1, 1, 1, 6, 4]
    scores = [0.0, 0.0, 0.0, -2.0, -1.0, -3.0, 0.0, 0.0]
    assert spm_merges(tokens, types, scores) == [("b", "c"), ("a", "b"), ("a", "bc"), ("ab", "c")]
    assert spm_caveats(tokens, types, scores) == []


def test_vocabularies_a_merge_list_cannot_follow_are_named(tmp_path, caplog):
    tokens = ["<unk>", "a", "b", "c", "ab", "bc", "xy", "abc", "zz"]
    types = [2, 1, 1, 1, 1, 1, 1, 5, 1]
    scores = [0.0, 0.0, 0.0, 0.0, -1.0, -1.0, -2.0, -3.0, -4.0]
    caveats = spm_caveats(tokens, types, scores)
    assert len(caveats) == 3
    assert "2 pieces no merge of two pieces produces (e.g. 'xy')" in caveats[0]
    assert "2 merged pieces sharing a score" in caveats[1] and "1 UNUSED" in caveats[2]
    writer = gguf.GGUFWriter(tmp_path / "odd.gguf", "llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list(tokens)
    writer.add_token_scores(scores)
    writer.add_token_types(types)
    save_gguf(writer)
    with caplog.at_level(logging.WARNING, logger="axllm"):
        tok = build_tokenizer(gguf.GGUFReader(tmp_path / "odd.gguf"))
    assert "odd.gguf: the SentencePiece vocabulary has 2 pieces" in caplog.text
    assert tok.encode("ab", add_special_tokens=False).tokens[-1] == "ab"  # after the unknown "▁"


def test_a_trained_vocabulary_has_no_caveats(sp, caplog):
    n = sp.get_piece_size()
    types = [piece_type(sp, i) for i in range(n)]
    assert (
        spm_caveats([sp.id_to_piece(i) for i in range(n)], types, [sp.get_score(i) for i in range(n)]) == []
    )
