"""axllm.tokenizer against transformers' AutoTokenizer loaded from the same directory.

Fast cases use small tokenizers built here (a hand-made byte-level BPE, a byte-fallback BPE in the
Llama-2 layout, a WordPiece) to pin down the config rules; the real Qwen2.5 and SmolLM2 tokenizers
(exported from their GGUFs) are checked on seeded random text (real_model).
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import transformers
from tokenizers import AddedToken, decoders, models, normalizers, pre_tokenizers, processors
from tokenizers import Tokenizer as Backend

from axllm.errors import ModelLoadError
from axllm.tokenizer import Detokenizer, Tokenizer

QWEN = "qwen2.5-coder-0.5b-instruct-q4_k_m"
SMOLLM = "smollm2-135m-instruct-q4_1"
FFFD = "\ufffd"


def hf_tokenizer(directory: Path):
    return transformers.AutoTokenizer.from_pretrained(str(directory))


# --- random text ------------------------------------------------------------------------------

POOLS = {
    "ascii": [
        "hello",
        " world",
        "The",
        " quick",
        "don't",
        "I'LL",
        "x",
        "foo.bar()",
        "a+b=c",
        "<div>",
        "https://example.com/?q=1",
        "CamelCase",
        "snake_case",
        "42",
        "3.14",
    ],
    "cjk": ["中文", "汉字测试", "東京", "한국어", "你好，世界"],
    "japanese": ["日本語のテキスト", "こんにちは", "カタカナ", "ｶﾀｶﾅ", "漢字とかな", "。、"],
    "emoji": ["😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "🤖", "🧑🏿‍🚀"],
    "space": [" ", "  ", "    ", "\t", " \t ", "\n", "\n\n", "\r\n", " \n ", "\u00a0", "\u3000"],
    "other": ["é", "ñ", "Ωμέγα", "привет", "عربى", "ß", "İ", "\u200b", FFFD],
    "special": ["<|im_start|>", "<|im_end|>", "<|endoftext|>", "<s>", "</s>"],
}


def random_strings(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    names = sorted(POOLS)
    return [
        "".join(rng.choice(POOLS[rng.choice(names)]) for _ in range(rng.randint(1, 14))) for _ in range(count)
    ]


def assert_matches_transformers(ours: Tokenizer, hf, texts: list[str]) -> None:
    for text in texts:
        for add in (True, False):
            ids = hf(text, add_special_tokens=add)["input_ids"]
            assert ours.encode(text, add_special_tokens=add) == ids, (text, add)
            for skip in (True, False):
                assert ours.decode(ids, skip_special_tokens=skip) == hf.decode(
                    ids, skip_special_tokens=skip
                ), (text, skip)


def stream(detok: Detokenizer, ids: list[int]) -> list[str]:
    return [detok.push(i) for i in ids] + [detok.flush()]


# --- a hand-built byte-level BPE --------------------------------------------------------------


def gpt2_byte_chars() -> list[str]:
    """GPT-2's byte-level spelling: printable Latin-1 bytes stand for themselves, the other 68
    bytes take the characters from U+0100 upwards, in byte order."""
    keep = set(range(0x21, 0x7F)) | set(range(0xA1, 0xAD)) | set(range(0xAE, 0x100))
    spelled, extra = [], 0
    for b in range(256):
        if b in keep:
            spelled.append(chr(b))
        else:
            spelled.append(chr(0x100 + extra))
            extra += 1
    return spelled


BYTE = gpt2_byte_chars()


def spell(text: str) -> list[str]:
    return [BYTE[b] for b in text.encode("utf-8")]


# Words merged whole, left to right; "😀" only up to its first two bytes, so the emoji always
# spans three tokens and "日本" two (one per character).
FULL_WORDS = ["hello", " world", " the", "日", "本"]
PARTIAL_WORDS = [("😀", 2)]
SPECIALS = ["<s>", "</s>", "<|im_start|>", "<|im_end|>"]


def byte_level_backend(post: str) -> Backend:
    vocab = {c: i for i, c in enumerate(BYTE)}
    merges = []
    for word, upto in [(w, None) for w in FULL_WORDS] + PARTIAL_WORDS:
        pieces = spell(word)[:upto]
        left = pieces[0]
        for right in pieces[1:]:
            merges.append((left, right))
            left += right
            vocab.setdefault(left, len(vocab))
    backend = Backend(models.BPE(vocab=vocab, merges=merges))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(t, normalized=False) for t in SPECIALS])
    backend.add_tokens([AddedToken("<tool>", normalized=False, special=False)])
    bos = backend.token_to_id("<s>")
    if post == "bos":  # Llama-3 style: BOS from the tokenizer.json post-processor
        backend.post_processor = processors.TemplateProcessing(
            single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", bos)]
        )
    elif post == "bytelevel":
        backend.post_processor = processors.ByteLevel(trim_offsets=False)
    return backend


def write_dir(
    directory: Path,
    backend: Backend,
    config: dict | None = None,
    generation: dict | None = None,
    special_map: dict | None = None,
) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    backend.save(str(directory / "tokenizer.json"))
    for name, value in (
        ("tokenizer_config.json", config),
        ("generation_config.json", generation),
        ("special_tokens_map.json", special_map),
    ):
        if value is not None:
            (directory / name).write_text(json.dumps(value), encoding="utf-8")
    return directory


BASE_CONFIG = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": "<s>", "eos_token": "</s>"}


@pytest.fixture
def byte_level(tmp_path: Path) -> Tokenizer:
    return Tokenizer.from_dir(write_dir(tmp_path / "bl", byte_level_backend("bytelevel"), BASE_CONFIG))


def test_byte_level_builder_splits_multibyte_characters(byte_level: Tokenizer) -> None:
    # The fixture is only useful if characters really span tokens.
    assert len(byte_level.encode("😀", add_special_tokens=False)) == 3
    assert len(byte_level.encode("日本", add_special_tokens=False)) == 2
    assert len(byte_level.encode("語", add_special_tokens=False)) == 3


@pytest.mark.parametrize("post", ["bos", "bytelevel", "none"])
@pytest.mark.parametrize("add_bos_token", [None, True, False])
def test_bos_comes_from_the_tokenizer_json_post_processor(
    tmp_path: Path, post: str, add_bos_token: bool | None
) -> None:
    config = dict(BASE_CONFIG)
    if add_bos_token is not None:
        config["add_bos_token"] = add_bos_token
        config["add_eos_token"] = add_bos_token
    directory = write_dir(tmp_path / "t", byte_level_backend(post), config)
    ours = Tokenizer.from_dir(directory)
    assert_matches_transformers(ours, hf_tokenizer(directory), ["hello world", "", "<s>hi", "日本 😀"])
    # transformers ignores add_bos_token / add_eos_token when tokenizer.json exists.
    ids = ours.encode("hello")
    assert ids[:1] == ([ours.bos_token_id] if post == "bos" else [ours.token_to_id("hello")])
    assert ids[-1] == ours.token_to_id("hello")
    assert ours.encode("hello", add_special_tokens=False) == [ours.token_to_id("hello")]


def test_named_special_tokens_become_special_like_transformers(tmp_path: Path) -> None:
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": {
            "__type": "AddedToken",
            "content": "<s>",
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
        },
        "eos_token": "<|eot_new|>",  # not in the vocabulary: added as a new special token
        "pad_token": "hello",  # an ordinary vocabulary entry: now matched whole, special
        "unk_token": "<tool>",  # a non-special added token: becomes special
        "additional_special_tokens": ["<extra_a>", "<|im_end|>"],
    }
    directory = write_dir(tmp_path / "t", byte_level_backend("bytelevel"), config)
    ours, hf = Tokenizer.from_dir(directory), hf_tokenizer(directory)
    texts = ["hello<|eot_new|> world<tool><extra_a>", "say hello", "xhellox <|im_end|>"]
    assert_matches_transformers(ours, hf, texts + random_strings(60, seed=3))
    assert ours.vocab_size == len(hf) == 256 + 17 + 5 + 2
    assert ours.eos_token == "<|eot_new|>" and ours.eos_token_ids == [hf.eos_token_id]
    assert ours.pad_token == "hello" and ours.bos_token == "<s>"
    ids = ours.encode("a<tool>hello", add_special_tokens=False)
    assert ours.decode(ids) == "a"
    assert ours.decode(ids, skip_special_tokens=False) == "a<tool>hello"


def test_legacy_special_tokens_map_overrides_config(tmp_path: Path) -> None:
    special_map = {
        "eos_token": {
            "content": "<|im_end|>",
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
        },
        "additional_special_tokens": ["<tool>"],
    }
    directory = write_dir(tmp_path / "t", byte_level_backend("none"), BASE_CONFIG, special_map=special_map)
    ours, hf = Tokenizer.from_dir(directory), hf_tokenizer(directory)
    assert ours.eos_token == hf.eos_token == "<|im_end|>"
    assert_matches_transformers(ours, hf, ["x<tool>y<|im_end|>", "hello</s>"])
    # An extra special token that tokenizer.json already has as a plain added token stays plain
    # (only the named ones are forced special), as in transformers.
    assert ours.decode(ours.encode("x<tool>y")) == "x<tool>y"
    assert ours.decode(ours.encode("x<|im_end|>y")) == "xy"


def test_special_tokens_map_ignored_when_config_has_added_tokens_decoder(tmp_path: Path) -> None:
    config = dict(
        BASE_CONFIG,
        added_tokens_decoder={
            "256": {
                "content": "<tool>",
                "lstrip": False,
                "normalized": False,
                "rstrip": False,
                "single_word": False,
                "special": False,
            }
        },
    )
    directory = write_dir(
        tmp_path / "t", byte_level_backend("none"), config, special_map={"eos_token": "<|im_end|>"}
    )
    ours, hf = Tokenizer.from_dir(directory), hf_tokenizer(directory)
    assert ours.eos_token == hf.eos_token == "</s>"
    assert_matches_transformers(ours, hf, ["x<tool>y</s>", "hello<|im_end|>"])


def test_split_special_tokens_config(tmp_path: Path) -> None:
    directory = write_dir(
        tmp_path / "t", byte_level_backend("none"), dict(BASE_CONFIG, split_special_tokens=True)
    )
    ours, hf = Tokenizer.from_dir(directory), hf_tokenizer(directory)
    assert ours.token_to_id("<|im_start|>") not in ours.encode("<|im_start|>hi")
    assert_matches_transformers(ours, hf, ["<|im_start|>user\nhi<|im_end|>"])


def test_synthetic_random_strings_match_transformers(tmp_path: Path) -> None:
    directory = write_dir(
        tmp_path / "t", byte_level_backend("bos"), dict(BASE_CONFIG, pad_token="<|im_end|>")
    )
    assert_matches_transformers(
        Tokenizer.from_dir(directory), hf_tokenizer(directory), random_strings(150, seed=11)
    )


def test_lookups_and_vocab_size(byte_level: Tokenizer) -> None:
    assert byte_level.vocab_size == 256 + 17 + 5  # bytes, merge results, added tokens
    tool = byte_level.token_to_id("<tool>")
    assert tool == byte_level.vocab_size - 1
    assert byte_level.id_to_token(tool) == "<tool>"
    assert byte_level.id_to_token(byte_level.token_to_id("hello")) == "hello"
    assert byte_level.token_to_id("not-a-token") is None
    assert byte_level.id_to_token(10**6) is None and byte_level.id_to_token(-1) is None
    assert byte_level.bos_token_id == byte_level.token_to_id("<s>")
    with pytest.raises(ValueError, match="non-negative"):
        byte_level.decode([-1])
    with pytest.raises(TypeError):
        byte_level.encode(b"bytes")


# --- eos ids and config errors ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("generation_eos", "config_eos", "expected"),
    [
        (3, "<|im_end|>", [3, "<|im_end|>"]),
        ([3, 1], "</s>", [3, 1, "</s>"]),
        ([1, 3, 1], "<|im_end|>", [1, 3, "<|im_end|>"]),
        (["</s>", 3], "</s>", ["</s>", 3]),
        ("</s>", "</s>", ["</s>"]),
        (None, "</s>", ["</s>"]),
        (None, None, []),
    ],
)
def test_eos_token_ids(tmp_path: Path, generation_eos, config_eos, expected) -> None:
    """generation_config's eos_token_id (int or list) first, then the config's eos_token."""
    backend = byte_level_backend("none")

    def resolve(value):
        return backend.token_to_id(value) if isinstance(value, str) else value

    generation = None
    if generation_eos is not None:
        generation = {
            "eos_token_id": [resolve(v) for v in generation_eos]
            if isinstance(generation_eos, list)
            else resolve(generation_eos)
        }
    config = {"eos_token": config_eos} if config_eos else {}
    ours = Tokenizer.from_dir(write_dir(tmp_path / "t", backend, config, generation))
    assert ours.eos_token_ids == [resolve(v) for v in expected]


def test_bad_generation_eos_rejected(tmp_path: Path) -> None:
    directory = write_dir(tmp_path / "t", byte_level_backend("none"), BASE_CONFIG, {"eos_token_id": ["x"]})
    with pytest.raises(ModelLoadError, match="generation_config.json.*eos_token_id"):
        Tokenizer.from_dir(directory)


def test_missing_tokenizer_json(tmp_path: Path) -> None:
    (tmp_path / "tokenizer_config.json").write_text("{}")
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json"):
        Tokenizer.from_dir(tmp_path)
    with pytest.raises(ModelLoadError, match=r"nowhere[/\\]tokenizer\.json"):
        Tokenizer.from_dir(tmp_path / "nowhere")


def test_corrupt_files_named(tmp_path: Path) -> None:
    (tmp_path / "tokenizer.json").write_text('{"model": ')
    with pytest.raises(ModelLoadError, match=r"tokenizer\.json"):
        Tokenizer.from_dir(tmp_path)
    directory = write_dir(tmp_path / "t", byte_level_backend("none"))
    (directory / "tokenizer_config.json").write_text("[not json")
    with pytest.raises(ModelLoadError, match=r"tokenizer_config\.json"):
        Tokenizer.from_dir(directory)
    (directory / "tokenizer_config.json").write_text('{"eos_token": 5}')
    with pytest.raises(ModelLoadError, match=r"tokenizer_config\.json: eos_token"):
        Tokenizer.from_dir(directory)


# --- detokenizer on the byte-level BPE --------------------------------------------------------


def test_detokenizer_holds_split_characters(byte_level: Tokenizer) -> None:
    ids = byte_level.encode("a😀b日本", add_special_tokens=False)
    chunks = stream(byte_level.detokenizer(), ids)
    assert chunks == ["a", "", "", "😀", "b", "日", "本", ""]


def test_detokenizer_trailing_incomplete_character_released_by_flush(byte_level: Tokenizer) -> None:
    ids = byte_level.encode("a😀", add_special_tokens=False)[:-1]  # the emoji's last byte lost
    detok = byte_level.detokenizer()
    assert [detok.push(i) for i in ids] == ["a", "", ""]
    assert detok.flush() == FFFD == byte_level.decode(ids)[1:]
    # After flush the detokenizer starts a new stream.
    assert detok.push(byte_level.token_to_id("hello")) == "hello"


def test_detokenizer_invalid_byte_then_text(byte_level: Tokenizer) -> None:
    ff = byte_level.token_to_id(BYTE[0xFF])  # never valid in UTF-8
    ids = [byte_level.token_to_id("hello"), ff, byte_level.token_to_id("Ġworld")]
    assert stream(byte_level.detokenizer(), ids) == ["hello", "", FFFD + " world", ""]


def test_detokenizer_special_tokens(byte_level: Tokenizer) -> None:
    ids = byte_level.encode("<|im_start|>hello<|im_end|>😀", add_special_tokens=False)
    assert "".join(stream(byte_level.detokenizer(), ids)) == "hello😀"
    chunks = stream(byte_level.detokenizer(skip_special_tokens=False), ids)
    assert chunks[:3] == ["<|im_start|>", "hello", "<|im_end|>"]
    assert "".join(chunks) == "<|im_start|>hello<|im_end|>😀"


def test_detokenizer_releases_long_replacement_runs_before_flush(byte_level: Tokenizer) -> None:
    text = "x" + FFFD * 40
    ids = byte_level.encode(text, add_special_tokens=False)
    detok = byte_level.detokenizer()
    released = "".join(detok.push(i) for i in ids)
    assert len(released) >= 40 - Detokenizer.MAX_HELD  # not all held until the end
    assert released + detok.flush() == text


@pytest.mark.parametrize("skip", [True, False])
def test_detokenizer_random_ids_concatenate_to_decode(byte_level: Tokenizer, skip: bool) -> None:
    rng = random.Random(5)
    for _ in range(1500):
        ids = [rng.randrange(byte_level.vocab_size + 3) for _ in range(rng.randint(0, 25))]
        expected = byte_level.decode(ids, skip_special_tokens=skip)
        chunks = stream(byte_level.detokenizer(skip_special_tokens=skip), ids)
        assert "".join(chunks) == expected, ids
        if FFFD not in expected:
            assert not any(FFFD in c for c in chunks), ids


def test_detokenizer_work_is_linear(byte_level: Tokenizer, monkeypatch) -> None:
    """Every push decodes a bounded window (counted through the raw decode it calls)."""
    text = "".join(random_strings(400, seed=9)) + "x" + FFFD * 200
    ids = byte_level.encode(text)
    expected = byte_level.decode(ids)
    decoded = []
    real_decode = byte_level._decode_raw
    monkeypatch.setattr(
        byte_level, "_decode_raw", lambda ids, skip: decoded.append(len(ids)) or real_decode(ids, skip)
    )
    detok = byte_level.detokenizer()
    assert "".join(detok.push(i) for i in ids) + detok.flush() == expected
    assert len(ids) > 3000
    assert max(decoded) <= 2 * Detokenizer.MAX_HELD + 2
    assert sum(decoded) <= 8 * len(ids)


def test_detokenizer_rejects_negative_ids(byte_level: Tokenizer) -> None:
    with pytest.raises(ValueError, match="non-negative"):
        byte_level.detokenizer().push(-3)


# --- other tokenizer families -----------------------------------------------------------------


def byte_fallback_backend() -> Backend:
    """Llama-2 layout: Metaspace via normalizer, <0xNN> pieces, Strip of the leading space."""
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    merges = [
        ("▁", "h"),
        ("l", "l"),
        ("▁h", "e"),
        ("▁he", "ll"),
        ("▁hell", "o"),
        ("▁", "w"),
        ("o", "r"),
        ("▁w", "or"),
        ("l", "d"),
        ("▁wor", "ld"),
    ]
    for piece in ["▁", "h", "e", "l", "o", "w", "r", "d", "日", "本", "."]:
        vocab.setdefault(piece, len(vocab))
    for left, right in merges:
        vocab.setdefault(left + right, len(vocab))
    backend = Backend(
        models.BPE(vocab=vocab, merges=merges, byte_fallback=True, unk_token="<unk>", fuse_unk=True)
    )
    backend.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    backend.decoder = decoders.Sequence(
        [decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    backend.post_processor = processors.TemplateProcessing(
        single="<s> $A", pair="<s> $A <s> $B", special_tokens=[("<s>", 1)]
    )
    backend.add_special_tokens(
        [
            AddedToken("<unk>", normalized=False),
            AddedToken("<s>", normalized=False),
            AddedToken("</s>", normalized=False),
        ]
    )
    return backend


def test_byte_fallback_tokenizer(tmp_path: Path) -> None:
    directory = write_dir(
        tmp_path / "bf", byte_fallback_backend(), dict(BASE_CONFIG, unk_token="<unk>", add_bos_token=True)
    )
    ours = Tokenizer.from_dir(directory)
    texts = ["hello world", " hello", "日本語 😀 hello", "<s>hello</s> world"]
    assert_matches_transformers(ours, hf_tokenizer(directory), texts + random_strings(80, seed=4))
    assert ours.encode("hello")[0] == 1
    chunks = stream(ours.detokenizer(), ours.encode("日本語 😀 hello."))
    assert "".join(chunks) == "日本語 😀 hello." and not any(FFFD in c for c in chunks)
    rng = random.Random(8)
    for _ in range(1500):
        ids = [rng.randrange(ours.vocab_size) for _ in range(rng.randint(0, 25))]
        for skip in (True, False):
            expected = ours.decode(ids, skip_special_tokens=skip)
            assert "".join(stream(ours.detokenizer(skip_special_tokens=skip), ids)) == expected


def test_wordpiece_clean_up_spaces(tmp_path: Path) -> None:
    words = [
        "[UNK]",
        "[CLS]",
        "[SEP]",
        "hello",
        "world",
        "don",
        "'",
        "t",
        "n",
        "s",
        ".",
        ",",
        "?",
        "!",
        "##s",
        "##t",
        "##'",
        "a",
        "b",
    ]
    backend = Backend(models.WordPiece(vocab={w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    backend.normalizer = normalizers.BertNormalizer(lowercase=True)
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    backend.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B [SEP]", special_tokens=[("[CLS]", 1), ("[SEP]", 2)]
    )
    backend.add_special_tokens(["[UNK]", "[CLS]", "[SEP]"])
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "unk_token": "[UNK]",
        "cls_token": "[CLS]",
        "sep_token": "[SEP]",
        "clean_up_tokenization_spaces": True,
    }
    directory = write_dir(tmp_path / "wp", backend, config)
    ours, hf = Tokenizer.from_dir(directory), hf_tokenizer(directory)
    texts = ["hello , world .", "don't !", "a 's b", "hello world ?", "a ' b"]
    assert_matches_transformers(ours, hf, texts)
    assert ours.decode(ours.encode("hello , world .")) == "hello, world."
    rng = random.Random(2)
    for _ in range(1500):
        ids = [rng.randrange(len(words)) for _ in range(rng.randint(0, 12))]
        assert "".join(stream(ours.detokenizer(), ids)) == ours.decode(ids), ids


# --- real models ------------------------------------------------------------------------------

# Rare kanji (鬱, 躑躅, 薔薇, 龘) and newer emoji (🫠, 🪿, 🧌) span several tokens even in Qwen's
# large vocabulary.
LONG_TEXTS = [
    "吾輩は猫である。名前はまだ無い。🐱どこで生れたかとんと見当がつかぬ。😸👍🏽鬱🫠" * 8,
    "東京タワー🗼と富士山🗻、そして「おにぎり🍙」。家族👨‍👩‍👧‍👦で旅行🇯🇵！躑躅と薔薇🪿" * 8,
    "ｶﾀｶﾅ、ひらがな、漢字🀄の混在テキスト。\n\n  絵文字🧑🏿‍🚀🤖❤️‍🔥も。龘🧌" * 8,
]


@pytest.mark.real_model
@pytest.mark.parametrize("name", [QWEN, SMOLLM])
def test_real_tokenizer_matches_transformers(real_dirs, name: str) -> None:
    ours, hf = Tokenizer.from_dir(real_dirs[name]), hf_tokenizer(real_dirs[name])
    assert ours.vocab_size == len(hf)
    assert_matches_transformers(ours, hf, random_strings(300, seed=20240611))


@pytest.mark.real_model
@pytest.mark.parametrize("name", [QWEN, SMOLLM])
def test_real_detokenizer_on_japanese_and_emoji(real_dirs, name: str) -> None:
    ours = Tokenizer.from_dir(real_dirs[name])
    for text in LONG_TEXTS:
        ids = ours.encode(text, add_special_tokens=False)
        # Characters split across tokens are present, so holding back is exercised.
        assert any(FFFD in ours.decode([i]) for i in ids)
        for skip in (True, False):
            chunks = stream(ours.detokenizer(skip_special_tokens=skip), ids)
            assert not any(FFFD in c for c in chunks)
            assert "".join(chunks) == ours.decode(ids, skip_special_tokens=skip) == text
    ids = ours.encode("<|im_start|>assistant\n" + LONG_TEXTS[0] + "<|im_end|>", add_special_tokens=False)
    assert "".join(stream(ours.detokenizer(), ids)) == "assistant\n" + LONG_TEXTS[0]


@pytest.mark.real_model
def test_real_special_tokens(real_dirs) -> None:
    qwen = Tokenizer.from_dir(real_dirs[QWEN])
    assert (qwen.bos_token, qwen.eos_token, qwen.pad_token) == (
        "<|endoftext|>",
        "<|im_end|>",
        "<|endoftext|>",
    )
    assert qwen.eos_token_ids == [151645]
    assert qwen.encode("<|im_start|>user") == [151644, 872]
    smollm = Tokenizer.from_dir(real_dirs[SMOLLM])
    assert smollm.eos_token_ids == [2] and smollm.bos_token_id == 1
    assert smollm.encode("What is the capital of France?") == [1780, 314, 260, 3575, 282, 4649, 47]
