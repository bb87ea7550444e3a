"""``axllm.LLM``: text in, text out, over the C++ runtime (``axllm._core.LLM``).

The runtime works on token ids; this class adds the tokenizer, the model's own chat template,
UTF-8-safe incremental detokenization and stop strings held back from the stream.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence, Union

from axllm import _core
from axllm.chat_template import ChatTemplate
from axllm import kv_session
from axllm.errors import ContextOverflowError, ModelLoadError
from axllm.generation import Chunk, Completion, ContextUsage, Metrics
from axllm.scheduler import FairLock
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
OVERFLOW_POLICIES = ("error", "truncate_left", "drop_oldest_turns")


@dataclass(frozen=True)
class KvSnapshot:
    """The KV cache of one model at one moment: token ids and raw K/V rows per layer."""

    tokens: list[int]
    k: list[bytes]
    v: list[bytes]

    @property
    def nbytes(self) -> int:
        return sum(map(len, self.k)) + sum(map(len, self.v))


@dataclass
class _Lease:
    """The right to run generations on the model, held by one stream from its first step to its
    end. A newer stream started on the same thread takes it over (revoking this one)."""

    thread: int
    gen: Any = None
    revoked: bool = False


class LLM:
    """A pulsar2-shaped model directory, loaded for generation.

    ``model`` is a pulsar2 build directory (``<type>_p<P>_l<i>_together.axmodel`` or ``.cpumodel``
    files, ``<type>_post.*``, the bf16 embedding table, tokenizer files) or a model package as
    AXERA publishes them (an axmodel subdirectory, a tokenizer subdirectory, ``post_config.json``,
    optionally ax-llm's ``config.json``). ``overrides`` mirror ax-llm's flags
    (``template_filename_axmodel``, ``axmodel_num``, ``filename_post_axmodel``,
    ``filename_tokens_embed``, ``tokens_embed_num``, ``tokens_embed_size``). ``backend`` is
    ``"auto"``, ``"cpu"``, ``"ax"`` (native board) or ``"axcl"`` (PCIe/M.2 cards); ``devices``
    lists the AXCL cards to split the layers over (default ``$AXLLM_DEVICES``, else card 0).

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
        devices: Optional[Sequence[int]] = None,
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
        self._core = _core.LLM(str(root), backend, merged, callback, list(devices or []))
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
        self._fingerprint: Optional[str] = None
        self._lock = FairLock()
        self._lease_mutex = threading.Lock()
        self._lease: Optional[_Lease] = None

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
                 overflow: str = "error",
                 prefill_progress: Optional[Callable[[int, int], None]] = None,
                 ) -> Union[Completion, Iterator[Chunk]]:
        """Continue ``prompt`` (text, tokenized with the model's special tokens, or token ids used
        as they are). Returns a ``Completion``, or with ``stream=True`` an iterator of ``Chunk``s
        whose ``__next__`` runs the model one step (breaking out of the loop stops it).

        The KV cache is reused for the longest common prefix with what it holds (reported as
        ``metrics.cached_tokens``). ``overflow`` decides what a prompt longer than the context
        does: ``"error"`` raises ContextOverflowError(needed, available); ``"truncate_left"``
        drops its oldest tokens, keeping room for min(max_new_tokens or 256, context / 2)
        generated tokens.

        ``prefill_progress(done, total)``, if given, is called after each prefill chunk with the
        prompt tokens run so far and the number to run (the prompt minus the reused prefix), on
        the thread that advances the generation; calling ``stop()`` from it cancels at once, and
        an exception it raises ends the generation and propagates to the caller."""
        ids = self._prompt_ids(prompt)
        ids = self._fit(ids, overflow, max_new_tokens, allow_drop_turns=False)
        sampling = self._sampling(locals())
        chunks = self._stream(ids, max_new_tokens, sampling, _stop_list(stop), prefill_progress)
        return chunks if stream else _collect(chunks)

    def chat(self, messages: Sequence[Mapping[str, Any]], *, max_new_tokens: Optional[int] = None,
             temperature: Optional[float] = None, top_k: Optional[int] = None,
             top_p: Optional[float] = None, min_p: Optional[float] = None,
             repetition_penalty: Optional[float] = None, presence_penalty: Optional[float] = None,
             frequency_penalty: Optional[float] = None, seed: Optional[int] = None,
             stop: Union[str, Sequence[str], None] = None, stream: bool = False,
             overflow: str = "error",
             prefill_progress: Optional[Callable[[int, int], None]] = None,
             ) -> Union[Completion, Iterator[Chunk]]:
        """Reply to ``messages`` ([{"role": ..., "content": ...}, ...]) through the model's chat
        template; arguments as for ``generate``. ``overflow="drop_oldest_turns"`` drops the oldest
        non-system messages (a user message with the replies after it) until the prompt fits,
        keeping the last user message."""
        ids = self._chat_ids(messages, overflow, max_new_tokens)
        sampling = self._sampling(locals())
        chunks = self._stream(ids, max_new_tokens, sampling, _stop_list(stop), prefill_progress)
        return chunks if stream else _collect(chunks)

    def stop(self) -> None:
        """Cancel the running generation from any thread; it finishes with ``"cancelled"``."""
        self._core.stop()

    def reset(self) -> None:
        """Empty the KV cache, except a precomputed system prompt (see precompute_system_prompt)."""
        self._core.reset()

    def rewind(self, n: int) -> None:
        """Drop the last ``n`` cached tokens (to regenerate or edit the last message without a new
        prefill of what comes before)."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        try:
            self._core.rewind(n)
        except IndexError as e:
            raise ValueError(str(e)) from None

    @property
    def context_usage(self) -> ContextUsage:
        """Tokens in the KV cache and the context length."""
        return ContextUsage(int(self._core.kv_size), self.context_length)

    @property
    def cached_tokens(self) -> list[int]:
        """The token ids whose K/V rows the cache holds."""
        return list(self._core.kv_tokens)

    @property
    def fingerprint(self) -> str:
        """Identifies the model files (see kv_session.model_fingerprint)."""
        if self._fingerprint is None:
            self._fingerprint = kv_session.model_fingerprint(self._core.files)
        return self._fingerprint

    def system_prompt_tokens(self, system_prompt: str) -> list[int]:
        """The ids the chat template makes of a conversation holding only ``system_prompt``."""
        text = self.apply_chat_template([{"role": "system", "content": system_prompt}],
                                        add_generation_prompt=False)
        return self.tokenizer.encode(text, add_special_tokens=False)

    def precompute_system_prompt(self, system_prompt: str) -> int:
        """Prefill the system prompt once and keep it across reset(); chats that start with it
        reuse it. Returns its token count."""
        ids = self.system_prompt_tokens(system_prompt)
        self._core.pin_prefix(0)
        self._core.reset()
        self._core.extend(ids)
        self._core.pin_prefix(len(ids))
        return len(ids)

    def snapshot(self) -> "KvSnapshot":
        """An in-memory copy of the KV cache (token ids and rows), for restore()."""
        core = self._core
        tokens = list(core.kv_tokens)
        n_layers = self.geometry["n_layers"]
        return KvSnapshot(tokens, [core.read_kv(i, False, len(tokens)) for i in range(n_layers)],
                          [core.read_kv(i, True, len(tokens)) for i in range(n_layers)])

    def restore(self, snapshot: "KvSnapshot") -> None:
        """Puts a snapshot of this model's cache back (the next call reuses its prefix)."""
        self._core.load_kv(snapshot.tokens, snapshot.k, snapshot.v)

    def save_session(self, path: Union[str, os.PathLike], extra: Optional[dict] = None) -> Path:
        """Save the KV cache and its token ids (plus ``extra``, any JSON data) to ``path``."""
        return kv_session.save(self, path, extra)

    def load_session(self, path: Union[str, os.PathLike]) -> dict:
        """Restore a saved cache; returns its ``extra``. Raises SessionMismatchError when the
        file belongs to another model, chat template or KV geometry."""
        return kv_session.load(self, path)

    def export_kvcache(self, directory: Union[str, os.PathLike], system_prompt: str) -> Path:
        """Write the cache as ax-llm's kvcache directory (k_cache_<l>.bin, v_cache_<l>.bin,
        config.json with system_prompt and precompute_len)."""
        return kv_session.export_axllm_kvcache(self, directory, system_prompt)

    def import_kvcache(self, directory: Union[str, os.PathLike]) -> str:
        """Load ax-llm's kvcache directory as a pinned system prompt; returns its text."""
        return kv_session.import_axllm_kvcache(self, directory)

    def _room(self, max_new_tokens: Optional[int]) -> int:
        c = self.context_length
        return min(max_new_tokens or 256, c // 2)

    def _overflow_error(self, needed: int) -> ContextOverflowError:
        e = ContextOverflowError(f"the prompt has {needed} tokens but the context holds "
                                 f"{self.context_length}")
        e.needed = needed
        e.available = self.context_length
        return e

    def _fit(self, ids: list[int], overflow: str, max_new_tokens: Optional[int],
             allow_drop_turns: bool) -> list[int]:
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {OVERFLOW_POLICIES}, got {overflow!r}")
        if overflow == "drop_oldest_turns" and not allow_drop_turns:
            raise ValueError("overflow='drop_oldest_turns' needs chat() messages")
        if len(ids) <= self.context_length:
            return ids
        if overflow == "truncate_left":
            return ids[len(ids) - (self.context_length - self._room(max_new_tokens)):]
        raise self._overflow_error(len(ids))

    def _chat_ids(self, messages: Sequence[Mapping[str, Any]], overflow: str,
                  max_new_tokens: Optional[int]) -> list[int]:
        def encode(msgs: Sequence[Mapping[str, Any]]) -> list[int]:
            text = self.apply_chat_template(msgs, add_generation_prompt=True)
            return self.tokenizer.encode(text, add_special_tokens=False)

        ids = encode(messages)
        if overflow != "drop_oldest_turns" or len(ids) <= self.context_length:
            return self._fit(ids, overflow, max_new_tokens, allow_drop_turns=True)
        limit = self.context_length - self._room(max_new_tokens)
        msgs = list(messages)
        system = [m for m in msgs[:1] if m.get("role") == "system"]
        rest = msgs[len(system):]
        while len(ids) > limit:
            cut = next((i for i in range(1, len(rest)) if rest[i].get("role") == "user"), None)
            if cut is None:
                raise self._overflow_error(len(ids))
            rest = rest[cut:]
            ids = encode(system + rest)
        return ids

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
        n = args.get("max_new_tokens")
        if n is not None:
            if isinstance(n, bool) or not isinstance(n, int):
                raise TypeError(f"max_new_tokens must be an int, got {type(n).__name__}")
            if n < 1:
                raise ValueError(f"max_new_tokens must be >= 1, got {n}")
        return sampling

    def _stream(self, ids: list[int], max_new_tokens: Optional[int], sampling: dict,
                stops: list[str], prefill_progress: Optional[Callable[[int, int], None]] = None,
                ) -> Iterator[Chunk]:
        if prefill_progress is not None and not callable(prefill_progress):
            raise TypeError("prefill_progress must be callable or None")
        # Past the context nothing more can be generated; this also keeps the value in int32.
        limit = -1 if max_new_tokens is None else min(int(max_new_tokens), self.context_length + 1)
        return self._chunks(ids, limit, sampling, stops, prefill_progress)

    def _acquire(self) -> _Lease:
        """Waits for the model in arrival order. A stream still open on this same thread is
        superseded instead (it finishes "cancelled"), since waiting for it would never end."""
        me = threading.get_ident()
        with self._lease_mutex:
            current = self._lease
            if current is not None and current.thread == me and not current.revoked:
                current.revoked = True
                if current.gen is not None:
                    current.gen.cancel()
                self._lease = _Lease(me)
                return self._lease
        self._lock.acquire()
        with self._lease_mutex:
            self._lease = _Lease(me)
            return self._lease

    def _release(self, lease: _Lease) -> None:
        with self._lease_mutex:
            if lease.revoked:
                return
            self._lease = None
        self._lock.release()

    def _chunks(self, ids: list[int], max_new_tokens: int, sampling: dict,
                stops: list[str], prefill_progress: Optional[Callable[[int, int], None]],
                ) -> Iterator[Chunk]:
        lease = self._acquire()
        try:
            gen = self._core.generate(ids, max_new_tokens, self.eos_token_ids, sampling,
                                      prefill_progress=prefill_progress)
            lease.gen = gen
            if lease.revoked:
                gen.cancel()
            yield from self._steps(gen, stops)
        finally:
            self._release(lease)

    def _steps(self, gen: Any, stops: list[str]) -> Iterator[Chunk]:
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

    def astream(self, prompt: Prompt, **kwargs: Any):
        """``async for chunk in llm.astream(prompt, ...)``: generate() streamed to asyncio; the
        model runs on a worker thread and wakes the event loop per chunk (no polling)."""
        from axllm import aio

        return aio.astream(self, "generate", prompt, **kwargs)

    def astream_chat(self, messages: Sequence[Mapping[str, Any]], **kwargs: Any):
        """chat() streamed to asyncio, like astream()."""
        from axllm import aio

        return aio.astream(self, "chat", messages, **kwargs)

    async def agenerate(self, prompt: Prompt, **kwargs: Any) -> Completion:
        """``await llm.agenerate(prompt, ...)``: generate() off the event loop."""
        from axllm import aio

        return await aio.agenerate(self, prompt, **kwargs)

    async def achat(self, messages: Sequence[Mapping[str, Any]], **kwargs: Any) -> Completion:
        """``await llm.achat(messages, ...)``: chat() off the event loop."""
        from axllm import aio

        return await aio.achat(self, messages, **kwargs)

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
