"""A byte-level tokenizer small enough for the tiny test models: one token per byte (ids 0-255)
plus ChatML special tokens, written as tokenizer.json / tokenizer_config.json /
generation_config.json with the tokenizers package."""

from __future__ import annotations

import json
from pathlib import Path

from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from tokenizers.pre_tokenizers import ByteLevel

SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
    "+ '<|im_end|>\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}"
    "{% endif %}"
)


def write_tiny_tokenizer(directory: Path, eos_token_ids: list[int] | None = None) -> dict[str, int]:
    """Writes the tokenizer files into ``directory``; returns the special token ids."""
    alphabet = ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet, key=lambda c: ord(c)))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens(SPECIALS)
    directory.mkdir(parents=True, exist_ok=True)
    tok.save(str(directory / "tokenizer.json"))
    ids = {s: tok.token_to_id(s) for s in SPECIALS}
    (directory / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "bos_token": None,
                "chat_template": CHATML,
                "clean_up_tokenization_spaces": False,
            }
        )
    )
    eos = eos_token_ids if eos_token_ids is not None else [ids["<|im_end|>"], ids["<|endoftext|>"]]
    (directory / "generation_config.json").write_text(json.dumps({"eos_token_id": eos}))
    return ids
