"""``axllm.LLM``: text in, text out, over the C++ runtime (``axllm._core.LLM``).

The runtime works on token ids; this class adds the tokenizer, the model's own chat template,
UTF-8-safe incremental detokenization and stop strings held back from the stream.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from axllm import _core
from axllm.chat_template import ChatTemplate
from axllm.errors import ModelLoadError
from axllm.generation import Chunk, Completion, Metrics
from axllm.model_dir import (
    config_overrides,
    find_tokenizer_dir,
    generation_config_sampling,
    post_config_sampling,
)
from axllm.stop_strings import StopMatcher
from axllm.tokenizer import Tokenizer

Prompt = Union[str, Sequence[int]]
_HF_KEYS = ("temperature", "top_k", "top_p", "min_p", "repetition_penalty", "presence_penalty",
            "frequency_penalty")


class LLM:
    """A pulsar2-shaped model directory, loaded for generation.

    ``model`` is a pulsar2 build directory (``<type>_p<P>_l<i>_together.axmodel`` or ``.cpumodel``
    files, ``<type>_post.*``, the bf16 embedding table, tokenizer files) or a model package as
    AXERA publishes them (an axmodel subdirectory, a tokenizer subdirectory, ``post_config.json``,
    optionally ax-llm's ``config.json``). ``overrides`` mirror ax-llm's flags
    (``template_filename_axmodel``, ``axmodel_num``, ``filename_post_axmodel``,
    ``filename_tokens_embed``, ``tokens_embed_num``, ``tokens_embed_size``).

    Sampling defaults come from ``post_config.json`` (AXERA's semantics, ``mode="vendor"``) when
    the model has one, else from ``generation_config.json`` (Hugging Face semantics: greedy unless
    ``do_sample``), else greedy. A call that passes any sampling argument uses Hugging Face
    semantics with just those arguments. ``temperature=0`` is greedy.
    """

    def __init__(
        self,
        model: Union[str, os.PathLike],
        *,
        backend: str = "auto",
        tokenizer: Union[str, os.PathLike, None] = None,
        chat_template: Optional[str] = None,
        overrides: Optional[Mapping[str, Any]] = None,
        progress: Union[bool, Callable[[int, int], None]] = False,
    ):
        root = Path(model)
        if not root.exists():
            raise ModelLoadError(f"{root}: model path does not exist")
        self.path = root
        tok_dir = Path(tokenizer) if tokenizer is not None else find_tokenizer_dir(root)
        self.tokenizer = Tokenizer.from_dir(tok_dir)
        self.chat_template = (ChatTemplate.from_string(chat_template, origin="chat_template argument")
                              if chat_template is not None else ChatTemplate.from_dir(tok_dir))
        merged = {**config_overrides(root), **(overrides or {})}
        self._default_sampling = (post_config_sampling(root) or generation_config_sampling(tok_dir)
                                  or {"mode": "hf", "temperature": 0.0})
        callback = _progress_bar if progress is True else (progress or None)
        self._core = _core.LLM(str(root), backend, merged, callback)
        g = self._core.geometry
        if self.tokenizer.vocab_size > g["vocab"]:
            raise ModelLoadError(
                f"{tok_dir / 'tokenizer.json'}: the tokenizer has {self.tokenizer.vocab_size} tokens "
                f"but the model's vocabulary ({self._core.files['post']}) has {g['vocab']}")
        self.eos_token_ids = list(self.tokenizer.eos_token_ids)
        if not self.eos_token_ids:
            raise ModelLoadError(f"{tok_dir}: no EOS token id in generation_config.json or "
                                 "tokenizer_config.json")
        self.last_metrics: Optional[Metrics] = None

    @property
    def default_sampling(self) -> dict:
        """The sampling used when a call passes no sampling argument."""
        return dict(self._default_sampling)

    @property
    def backend(self) -> str:
        return self._core.backend

    @property
    def context_length(self) -> int:
        return int(self._core.geometry["kv_len"])

    @property
    def files(self) -> dict:
        """The model files the runtime resolved: layers, post model, embeddings."""
        return dict(self._core.files)

    @property
    def geometry(self) -> dict:
        return dict(self._core.geometry)

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def detokenize(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(self, messages: Sequence[Mapping[str, Any]], *,
                            add_generation_prompt: bool = True, **kwargs: Any) -> str:
        """The prompt text the model's chat template makes of ``messages``."""
        return self.chat_template.render(
            messages, add_generation_prompt=add_generation_prompt,
            bos_token=self.tokenizer.bos_token, eos_token=self.tokenizer.eos_token, **kwargs)

    def generate(self, prompt: Prompt, *, max_new_tokens: Optional[int] = None,
                 temperature: Optional[float] = None, top_k: Optional[int] = None,
                 top_p: Optional[float] = None, min_p: Optional[float] = None,
                 repetition_penalty: Optional[float] = None, presence_penalty: Optional[float] = None,
                 frequency_penalty: Optional[float] = None, seed: Optional[int] = None,
                 stop: Union[str, Sequence[str], None] = None, stream: bool = False,
                 ) -> Union[Completion, Iterator[Chunk]]:
        """Continue ``prompt`` (text, tokenized with the model's special tokens, or token ids used
        as they are). Returns a ``Completion``, or with ``stream=True`` an iterator of ``Chunk``s
        whose ``__next__`` runs the model one step (breaking out of the loop stops it)."""
        ids = self._prompt_ids(prompt)
        sampling = self._sampling(locals())
        chunks = self._stream(ids, max_new_tokens, sampling, _stop_list(stop))
        return chunks if stream else _collect(chunks)

    def chat(self, messages: Sequence[Mapping[str, Any]], *, max_new_tokens: Optional[int] = None,
             temperature: Optional[float] = None, top_k: Optional[int] = None,
             top_p: Optional[float] = None, min_p: Optional[float] = None,
             repetition_penalty: Optional[float] = None, presence_penalty: Optional[float] = None,
             frequency_penalty: Optional[float] = None, seed: Optional[int] = None,
             stop: Union[str, Sequence[str], None] = None, stream: bool = False,
             ) -> Union[Completion, Iterator[Chunk]]:
        """Reply to ``messages`` ([{"role": ..., "content": ...}, ...]) through the model's chat
        template; arguments as for ``generate``."""
        text = self.apply_chat_template(messages, add_generation_prompt=True)
        ids = self.tokenizer.encode(text, add_special_tokens=False)
        sampling = self._sampling(locals())
        chunks = self._stream(ids, max_new_tokens, sampling, _stop_list(stop))
        return chunks if stream else _collect(chunks)

    def stop(self) -> None:
        """Cancel the running generation from any thread; it finishes with ``"cancelled"``."""
        self._core.stop()

    def reset(self) -> None:
        """Empty the KV cache."""
        self._core.reset()

    def _prompt_ids(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            ids = self.tokenizer.encode(prompt, add_special_tokens=True)
        elif isinstance(prompt, (list, tuple)) and all(
                isinstance(t, int) and not isinstance(t, bool) for t in prompt):
            ids = list(prompt)
        else:
            raise TypeError("prompt must be a str or a list of int token ids")
        if not ids:
            raise ValueError("prompt is empty")
        vocab = self._core.geometry["vocab"]
        bad = [t for t in ids if not 0 <= t < vocab]
        if bad:
            raise ValueError(f"prompt token id {bad[0]} is outside the vocabulary [0, {vocab})")
        return ids

    def _sampling(self, args: Mapping[str, Any]) -> dict[str, Any]:
        given = {k: args[k] for k in _HF_KEYS if args.get(k) is not None}
        if given:
            sampling: dict[str, Any] = {"mode": "hf", **given}
        else:
            sampling = dict(self._default_sampling)
        if args.get("seed") is not None:
            sampling["seed"] = int(args["seed"])
        if args.get("max_new_tokens") is not None and args["max_new_tokens"] < 1:
            raise ValueError(f"max_new_tokens must be >= 1, got {args['max_new_tokens']}")
        return sampling

    def _stream(self, ids: list[int], max_new_tokens: Optional[int], sampling: dict,
                stops: list[str]) -> Iterator[Chunk]:
        gen = self._core.generate(ids, -1 if max_new_tokens is None else int(max_new_tokens),
                                  self.eos_token_ids, sampling)
        return self._chunks(gen, stops)

    def _chunks(self, gen: Any, stops: list[str]) -> Iterator[Chunk]:
        detok = self.tokenizer.detokenizer(skip_special_tokens=True)
        matcher = StopMatcher(stops) if stops else None
        pending: list[int] = []
        done = False
        try:
            for token, finish, _stop_token in gen:
                text = ""
                if token >= 0:
                    pending.append(token)
                    text = detok.push(token)
                if finish is not None:
                    text += detok.flush()
                matched = None
                if matcher is not None:
                    text, matched = matcher.push(text)
                    if matched is None and finish is not None:
                        text += matcher.flush()
                        matched = matcher.matched
                if matched is not None:
                    gen.cancel()
                    done = True
                    yield self._last(gen, text, pending, "stop", matched)
                    return
                if finish is not None:
                    done = True
                    yield self._last(gen, text, pending, finish, None)
                    return
                if text:
                    yield Chunk(text, pending)
                    pending = []
        finally:
            if not done:
                gen.cancel()

    def _last(self, gen: Any, text: str, ids: list[int], finish: str, stop: Optional[str]) -> Chunk:
        metrics = Metrics.from_core(gen.metrics)
        self.last_metrics = metrics
        return Chunk(text, ids, finish, metrics, stop)

    def __enter__(self) -> "LLM":
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        g = self._core.geometry
        return (f"LLM({str(self.path)!r}, backend={self.backend!r}, layers={g['n_layers']}, "
                f"context={g['kv_len']}, prefill={g['prefill_len']})")


def _stop_list(stop: Union[str, Sequence[str], None]) -> list[str]:
    if stop is None:
        return []
    if isinstance(stop, str):
        return [stop]
    out = list(stop)
    if not all(isinstance(s, str) for s in out):
        raise TypeError("stop must be a string or a sequence of strings")
    return out


def _collect(chunks: Iterator[Chunk]) -> Completion:
    texts: list[str] = []
    ids: list[int] = []
    last: Optional[Chunk] = None
    for chunk in chunks:
        texts.append(chunk.text)
        ids.extend(chunk.token_ids)
        last = chunk
    assert last is not None and last.finish_reason is not None and last.metrics is not None
    return Completion("".join(texts), ids, last.finish_reason, last.metrics, last.stop)


def _progress_bar(done: int, total: int) -> None:
    import sys

    width = 30
    filled = width * done // total
    sys.stderr.write(f"\rloading [{'#' * filled}{'.' * (width - filled)}] {done}/{total}")
    if done == total:
        sys.stderr.write("\n")
    sys.stderr.flush()
