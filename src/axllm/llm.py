"""``axllm.LLM``: text in, text out, over the C++ runtime (``axllm._core.LLM``).

The runtime works on token ids; this class adds the tokenizer, the model's own chat template,
UTF-8-safe incremental detokenization, stop strings held back from the stream, and the order in
which threads sharing the model take turns (``axllm.model_lock``).
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Callable, Optional, Union, overload

from typing_extensions import Literal, Unpack

from axllm import _core, aio, kv_file
from axllm.chat_template import ChatTemplate
from axllm.errors import ModelLoadError
from axllm.generation import Chunk, Completion, ContextUsage, GenerationConfig, GenerationOptions, Metrics
from axllm.kv_snapshot import KvSnapshot
from axllm.model_dir import (
    config_overrides,
    find_tokenizer_dir,
    generation_config_sampling,
    post_config_sampling,
)
from axllm.model_lock import ModelLock
from axllm.progress import LoadProgressBar
from axllm.stop_strings import StopMatcher
from axllm.tokenizer import Tokenizer

Prompt = Union[str, Sequence[int]]
Messages = Sequence[Mapping[str, Any]]
PrefillProgress = Callable[[int, int], None]


class LLM:
    """A pulsar2-shaped model directory, loaded for generation.

    ``model`` is a pulsar2 build directory (``<type>_p<P>_l<i>_together.axmodel`` or ``.hostmodel``
    files, ``<type>_post.*``, the bf16 embedding table, tokenizer files) or a model package as
    AXERA publishes them (an axmodel subdirectory, a tokenizer subdirectory, ``post_config.json``,
    optionally ax-llm's ``config.json``). ``overrides`` mirror ax-llm's flags
    (``template_filename_axmodel``, ``axmodel_num``, ``filename_post_axmodel``,
    ``filename_tokens_embed``, ``tokens_embed_num``, ``tokens_embed_size``). ``backend`` is
    ``"auto"``, ``"host"`` (the host engine), ``"ax"`` (native board) or ``"axcl"`` (PCIe/M.2
    cards); ``devices``
    lists the AXCL cards to split the layers over (default ``$AXLLM_DEVICES``, else card 0).

    Sampling defaults come from ``post_config.json`` (AXERA's semantics, ``mode="vendor"``) when
    the model has one, else from ``generation_config.json`` (Hugging Face semantics: greedy unless
    ``do_sample``), else greedy. A call that sets any sampling option uses Hugging Face semantics
    with just those options (see ``GenerationConfig``). ``temperature=0`` is greedy.

    Threads may share one ``LLM``: generations take turns in arrival order, each holding the model
    from its first step to its end, and other calls wait for the step under way. ``close()`` (or
    leaving a ``with`` block) frees the model's engine memory at once; later calls raise
    ``ClosedError``.

    Attributes: ``path`` (the model directory), ``tokenizer``, ``chat_template`` and
    ``last_metrics`` (the ``Metrics`` of the last generation that finished, or None).

    Raises ModelLoadError (a missing, malformed or inconsistent file, named; its subclass
    UnsupportedModelError for an architecture the engine does not know; a backend that cannot
    run these files), TemplateError (a chat template that does not parse), EngineError (an NPU
    runtime that fails), ValueError (an unknown ``backend``), TypeError (an argument or override
    of the wrong type).
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
        self.chat_template = (
            ChatTemplate.from_string(chat_template, origin="chat_template argument")
            if chat_template is not None
            else ChatTemplate.from_dir(tok_dir)
        )
        merged = {**config_overrides(root), **(overrides or {})}
        default_sampling = (
            post_config_sampling(root)
            or generation_config_sampling(tok_dir)
            or {"mode": "hf", "temperature": 0.0}
        )
        callback = LoadProgressBar(sys.stderr) if progress is True else (progress or None)
        self._core = _core.LLM(str(root), backend, merged, callback, list(devices or []))
        g = self._core.geometry
        if self.tokenizer.vocab_size > g["vocab"]:
            raise ModelLoadError(
                f"{tok_dir / 'tokenizer.json'}: the tokenizer has {self.tokenizer.vocab_size} tokens "
                f"but the model's vocabulary ({self._core.files['post']}) has {g['vocab']}"
            )
        eos_token_ids = list(self.tokenizer.eos_token_ids)
        if not eos_token_ids:
            raise ModelLoadError(
                f"{tok_dir}: no EOS token id in generation_config.json or tokenizer_config.json"
            )
        self._core.set_defaults(eos_token_ids, default_sampling)
        self.last_metrics: Optional[Metrics] = None
        self._fingerprint: Optional[str] = None
        self._lock = ModelLock()

    @property
    def default_sampling(self) -> dict[str, Any]:
        """The sampler parameters used when a call sets no sampling option (a dict as
        ``axllm._core.Sampler`` takes them). Raises nothing (also readable after ``close()``)."""
        return dict(self._core.default_sampling)

    @property
    def eos_token_ids(self) -> list[int]:
        """The token ids that end a generation (not returned as tokens). Settable; setting raises
        ValueError for an id outside the model's vocabulary, TypeError for one that is not an
        int. Reading raises nothing (also after ``close()``)."""
        return list(self._core.eos_ids)

    @eos_token_ids.setter
    def eos_token_ids(self, ids: Sequence[int]) -> None:
        self._core.set_defaults(list(ids), self._core.default_sampling)

    @property
    def backend(self) -> str:
        """The engine running the model: ``"host"`` (the host engine), ``"ax"`` or ``"axcl"``.
        Raises nothing (also readable after ``close()``)."""
        return str(self._core.backend)

    @property
    def context_length(self) -> int:
        """Tokens the KV cache holds at most (prompt and reply together): C, the build's
        ``kv_cache_len``. Raises nothing (also readable after ``close()``)."""
        return int(self._core.geometry["kv_len"])

    @property
    def files(self) -> dict[str, Any]:
        """The model files the runtime resolved: ``root``, ``layer_template``, ``layers`` (one path
        per layer), ``post``, ``embeddings``. Raises nothing (also readable after ``close()``)."""
        return dict(self._core.files)

    @property
    def geometry(self) -> dict[str, Any]:
        """What the model files' IO says: layers, groups, hidden size, KV width, context length,
        prefill length, vocabulary, history capacity per group, IO dtype (keys ``n_layers``,
        ``n_groups``, ``hidden``, ``kv_dim``, ``kv_len``, ``prefill_len``, ``vocab``, ...). Raises
        nothing (also readable after ``close()``)."""
        return dict(self._core.geometry)

    @property
    def closed(self) -> bool:
        """Whether ``close()`` has been called. Raises nothing."""
        return bool(self._core.closed)

    def tokenize(self, text: str, *, add_special_tokens: bool = True) -> list[int]:
        """The token ids of ``text`` with the model's tokenizer (special-token text such as
        ``<|im_start|>`` becomes its id; the tokenizer's BOS etc. are added when
        ``add_special_tokens``). Runs in Python, without the model (works after ``close()``).
        Raises TypeError when ``text`` is not a str."""
        return self.tokenizer.encode(text, add_special_tokens=add_special_tokens)

    def detokenize(self, ids: Sequence[int], *, skip_special_tokens: bool = True) -> str:
        """The text of ``ids`` (special tokens left out when ``skip_special_tokens``; ids the
        tokenizer does not know are left out). Works after ``close()``. Raises ValueError for an
        id that is not a non-negative int."""
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)

    def apply_chat_template(
        self, messages: Messages, *, add_generation_prompt: bool = True, **kwargs: Any
    ) -> str:
        """The prompt text the model's chat template makes of ``messages`` ([{"role": ...,
        "content": ...}, ...]), ending with the start of the assistant's turn when
        ``add_generation_prompt``; ``kwargs`` are passed to the template (e.g. ``tools``).
        Raises ValueError (``messages`` not a non-empty list of mappings with a string role),
        TemplateError (the template fails, or calls ``raise_exception``)."""
        return self.chat_template.render(
            messages,
            add_generation_prompt=add_generation_prompt,
            bos_token=self.tokenizer.bos_token,
            eos_token=self.tokenizer.eos_token,
            **kwargs,
        )

    # fmt: off
    @overload
    def generate(self, prompt: Prompt, config: Optional[GenerationConfig] = None, *,
                 stream: Literal[False] = False, prefill_progress: Optional[PrefillProgress] = None,
                 **options: Unpack[GenerationOptions]) -> Completion: ...
    @overload
    def generate(self, prompt: Prompt, config: Optional[GenerationConfig] = None, *,
                 stream: Literal[True], prefill_progress: Optional[PrefillProgress] = None,
                 **options: Unpack[GenerationOptions]) -> Iterator[Chunk]: ...
    def generate(self, prompt: Prompt, config: Optional[GenerationConfig] = None, *, stream: bool = False,
                 prefill_progress: Optional[PrefillProgress] = None,
                 **options: Unpack[GenerationOptions]) -> Union[Completion, Iterator[Chunk]]:
        # fmt: on
        """Continue ``prompt`` (text, tokenized with the model's special tokens, or token ids used
        as they are) under ``config`` with ``options`` applied over it (the fields of
        ``GenerationConfig`` as keyword arguments). Returns a ``Completion``, or with
        ``stream=True`` an iterator of ``Chunk``s whose ``__next__`` runs the model (breaking out
        of the loop stops it).

        The KV cache is reused for the longest common prefix with what it holds (reported as
        ``metrics.cached_tokens``). A prompt longer than the context follows ``overflow``:
        ``"error"`` raises ContextOverflowError(needed, available) at once; ``"truncate_left"``
        drops its oldest tokens, keeping room for min(max_new_tokens or 256, context / 2) generated
        tokens.

        ``prefill_progress(done, total)``, if given, is called between prefill chunks on the
        thread iterating the stream, with the prompt tokens run so far and the number to run (the
        prompt minus the reused prefix); ``stop()`` from it cancels before the next chunk, and an
        exception it raises ends the generation and propagates.

        Raises ValueError/TypeError (bad prompt or options, naming them; a token id outside the
        vocabulary), ContextOverflowError, ClosedError, all at the call (with ``stream=True`` too);
        EngineError from the steps (with ``stream=True``, from the iteration), and whatever
        ``prefill_progress`` raises."""
        config = _config(config, options)
        ids = self.prompt_ids(prompt, config)
        chunks = self._chunks(ids, config, _progress_callable(prefill_progress))
        return chunks if stream else Completion.from_chunks(list(chunks))

    # fmt: off
    @overload
    def chat(self, messages: Messages, config: Optional[GenerationConfig] = None, *,
             stream: Literal[False] = False, prefill_progress: Optional[PrefillProgress] = None,
             **options: Unpack[GenerationOptions]) -> Completion: ...
    @overload
    def chat(self, messages: Messages, config: Optional[GenerationConfig] = None, *,
             stream: Literal[True], prefill_progress: Optional[PrefillProgress] = None,
             **options: Unpack[GenerationOptions]) -> Iterator[Chunk]: ...
    def chat(self, messages: Messages, config: Optional[GenerationConfig] = None, *, stream: bool = False,
             prefill_progress: Optional[PrefillProgress] = None,
             **options: Unpack[GenerationOptions]) -> Union[Completion, Iterator[Chunk]]:
        # fmt: on
        """Reply to ``messages`` ([{"role": ..., "content": ...}, ...]) through the model's chat
        template; arguments and errors as for ``generate``, plus TemplateError and ValueError for
        messages the template cannot take (see ``apply_chat_template``).
        ``overflow="drop_oldest_turns"`` drops the oldest non-system messages (a user message with
        the replies after it) until the prompt leaves room to reply, keeping the last user
        message."""
        config = _config(config, options)
        ids = self.chat_prompt(messages, config)
        chunks = self._chunks(ids, config, _progress_callable(prefill_progress))
        return chunks if stream else Completion.from_chunks(list(chunks))

    def stop(self) -> None:
        """Cancel the running generation from any thread; it finishes with ``"cancelled"``. Does
        nothing when none runs, also after ``close()``. Raises nothing."""
        self._core.stop()

    def reset(self) -> None:
        """Empty the KV cache, except a precomputed system prompt (see precompute_system_prompt);
        waits for the step under way. Raises ClosedError."""
        with self._lock.call:
            self._core.reset()

    def rewind(self, n: int) -> None:
        """Drop the last ``n`` cached tokens (to regenerate or edit the last message without a new
        prefill of what comes before). A precomputed system prompt is never dropped. Raises
        ValueError when ``n`` is negative or more than the unpinned cached tokens, TypeError when
        it is not an int, ClosedError."""
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        try:
            with self._lock.call:
                self._core.rewind(n)
        except IndexError as e:
            raise ValueError(str(e)) from None

    @property
    def context_usage(self) -> ContextUsage:
        """Tokens in the KV cache and the context length, ``(used, capacity)``. Raises
        ClosedError."""
        with self._lock.call:
            return ContextUsage(int(self._core.kv_size), self.context_length)

    @property
    def cached_tokens(self) -> list[int]:
        """The token ids whose K/V rows the cache holds. Raises ClosedError."""
        with self._lock.call:
            return list(self._core.kv_tokens)

    @property
    def fingerprint(self) -> str:
        """Identifies the model files (see kv_file.model_fingerprint; computed once, from each
        file's name, size and first and last 64 KiB). Raises OSError when a model file cannot be
        read."""
        if self._fingerprint is None:
            self._fingerprint = kv_file.model_fingerprint(self._core.files)
        return self._fingerprint

    def system_prompt_tokens(self, system_prompt: str) -> list[int]:
        """The ids the chat template makes of a conversation holding only ``system_prompt``.
        Raises TemplateError."""
        text = self.apply_chat_template(
            [{"role": "system", "content": system_prompt}], add_generation_prompt=False
        )
        return self.tokenizer.encode(text, add_special_tokens=False)

    def precompute_system_prompt(self, system_prompt: str) -> int:
        """Prefill the system prompt once and keep it across reset(); chats that start with it
        reuse it. Returns its token count. Replaces the cache (and an earlier pinned prompt).
        Raises TemplateError, ContextOverflowError (it does not fit the context), ClosedError,
        EngineError."""
        ids = self.system_prompt_tokens(system_prompt)
        with self._lock.call:
            self._core.pin_prefix(0)
            self._core.reset()
            self._core.extend(ids)
            self._core.pin_prefix(len(ids))
        return len(ids)

    def snapshot(self) -> KvSnapshot:
        """An in-memory copy of the KV cache (token ids, rows, pinned prefix), taken at once.
        Raises ClosedError."""
        with self._lock.call:
            tokens, k, v, pinned = self._core.snapshot()
        return KvSnapshot(list(tokens), list(k), list(v), int(pinned))

    def restore(self, snapshot: KvSnapshot) -> None:
        """Puts a snapshot of this model's cache back (the next call reuses its prefix). Raises
        ValueError when it does not fit this model (layers, rows, context), ClosedError."""
        with self._lock.call:
            self._core.restore(snapshot.tokens, snapshot.k, snapshot.v, snapshot.pinned)

    def save_kv(self, path: Union[str, os.PathLike], extra: Optional[dict] = None) -> Path:
        """Save the KV cache and its token ids (plus ``extra``, any JSON data) to a KV file,
        written to ``<path>.tmp`` and renamed; returns the path. Raises OSError when it cannot be
        written (e.g. a missing directory), TypeError when ``extra`` is not JSON-serializable,
        ClosedError."""
        return kv_file.write(path, self.snapshot(), self._kv_identity(), extra)

    def load_kv(self, path: Union[str, os.PathLike]) -> dict:
        """Restore a KV file saved by ``save_kv``; returns its ``extra``. Raises
        KvFileMismatchError when the file belongs to another model, chat template or KV geometry,
        ModelLoadError when it is not a readable KV file, ClosedError."""
        snapshot, extra = kv_file.read(path, self._kv_identity())
        self.restore(snapshot)
        return extra

    def export_kvcache(self, directory: Union[str, os.PathLike], system_prompt: str) -> Path:
        """Write the cache as ax-llm's kvcache directory (k_cache_<l>.bin, v_cache_<l>.bin,
        config.json with system_prompt and precompute_len); returns the directory. Raises
        OSError when it cannot be written, ClosedError."""
        return kv_file.write_axllm_kvcache(directory, self.snapshot(), system_prompt)

    def import_kvcache(self, directory: Union[str, os.PathLike]) -> str:
        """Load ax-llm's kvcache directory as a pinned system prompt; returns its text. Raises
        ModelLoadError (a missing or unreadable config.json or cache file), KvFileMismatchError
        (files of another geometry), TemplateError, ValueError (rows that do not fit this model),
        ClosedError."""
        snapshot, system_prompt = kv_file.read_axllm_kvcache(
            directory, self.geometry, self.system_prompt_tokens
        )
        self.restore(snapshot)
        return system_prompt

    def close(self) -> None:
        """Cancel any generation, wait for its step to end and free the model's engine models and
        buffers (NPU memory included) now rather than at garbage collection. Idempotent; later
        calls that use the model raise ClosedError (the properties that describe the model, the
        tokenizer methods and ``stop()`` keep working). Raises nothing."""
        self._core.close()

    def astream(
        self, prompt: Prompt, config: Optional[GenerationConfig] = None, **options: Any
    ) -> AsyncIterator[Chunk]:
        """``async for chunk in llm.astream(prompt, ...)``: generate() streamed to asyncio; the
        model runs on a worker thread and wakes the event loop per chunk (no polling). Raises
        what generate() raises, in the consumer; TypeError when ``stream=`` is passed."""
        return aio.astream(self, "generate", prompt, config, **options)

    def astream_chat(
        self, messages: Messages, config: Optional[GenerationConfig] = None, **options: Any
    ) -> AsyncIterator[Chunk]:
        """chat() streamed to asyncio, like astream(). Raises what chat() raises, in the
        consumer; TypeError when ``stream=`` is passed."""
        return aio.astream(self, "chat", messages, config, **options)

    async def agenerate(
        self, prompt: Prompt, config: Optional[GenerationConfig] = None, **options: Any
    ) -> Completion:
        """``await llm.agenerate(prompt, ...)``: generate() off the event loop. Raises what
        generate() raises."""
        return await aio.agenerate(self, prompt, config, **options)

    async def achat(
        self, messages: Messages, config: Optional[GenerationConfig] = None, **options: Any
    ) -> Completion:
        """``await llm.achat(messages, ...)``: chat() off the event loop. Raises what chat()
        raises."""
        return await aio.achat(self, messages, config, **options)

    def __enter__(self) -> LLM:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        g = self._core.geometry
        return (
            f"LLM({str(self.path)!r}, backend={self.backend!r}, layers={g['n_layers']}, "
            f"context={g['kv_len']}, prefill={g['prefill_len']})"
        )

    def _kv_identity(self) -> dict[str, Any]:
        return kv_file.identity(self.fingerprint, self.chat_template.sha256, self.geometry)

    def prompt_ids(
        self, prompt: Prompt, config: Optional[GenerationConfig] = None, **options: Unpack[GenerationOptions]
    ) -> list[int]:
        """The token ids ``generate(prompt, config, **options)`` runs: ``prompt`` tokenized (or
        its ids checked), fitted to the context per ``overflow``. Raises ValueError (an id outside
        the vocabulary, ``overflow="drop_oldest_turns"``), TypeError, ContextOverflowError,
        ClosedError."""
        config = _config(config, options)
        if config.overflow == "drop_oldest_turns":
            raise ValueError("overflow='drop_oldest_turns' needs chat() messages")
        return self._core.fit_prompt(self._prompt_ids(prompt), config)

    def chat_prompt(
        self,
        messages: Messages,
        config: Optional[GenerationConfig] = None,
        **options: Unpack[GenerationOptions],
    ) -> list[int]:
        """The token ids ``chat(messages, config, **options)`` runs: the chat template's prompt,
        tokenized, fitted to the context per ``overflow``. Raises TemplateError, ValueError (see
        ``apply_chat_template``), TypeError (bad options), ContextOverflowError, ClosedError."""
        config = _config(config, options)
        return self._core.fit_prompt(self._chat_ids(messages, config), config)

    def _chat_ids(self, messages: Messages, config: GenerationConfig) -> list[int]:
        def encode(msgs: Messages) -> list[int]:
            text = self.apply_chat_template(msgs, add_generation_prompt=True)
            return self.tokenizer.encode(text, add_special_tokens=False)

        ids = encode(messages)
        if config.overflow != "drop_oldest_turns" or len(ids) <= self.context_length:
            return ids
        limit = self._core.prompt_limit(config)
        msgs = list(messages)
        system = [m for m in msgs[:1] if m.get("role") == "system"]
        rest = msgs[len(system) :]
        while len(ids) > limit:
            cut = next((i for i in range(1, len(rest)) if rest[i].get("role") == "user"), None)
            if cut is None:
                break  # nothing more to drop: fit_prompt decides whether what is left fits
            rest = rest[cut:]
            ids = encode(system + rest)
        return ids

    def _prompt_ids(self, prompt: Prompt) -> list[int]:
        if isinstance(prompt, str):
            return self.tokenizer.encode(prompt, add_special_tokens=True)
        if isinstance(prompt, (list, tuple)) and all(
            isinstance(t, int) and not isinstance(t, bool) for t in prompt
        ):
            return list(prompt)
        raise TypeError("prompt must be a str or a list of int token ids")

    def _chunks(
        self, ids: list[int], config: GenerationConfig, progress: Optional[PrefillProgress]
    ) -> Iterator[Chunk]:
        with self._lock.turn() as turn:
            gen = self._core.generate(ids, config)
            turn.generation = gen
            if turn.superseded:
                gen.cancel()
            yield from self._steps(gen, config.stop, progress)

    def _steps(self, gen: Any, stops: list[str], progress: Optional[PrefillProgress]) -> Iterator[Chunk]:
        detok = self.tokenizer.detokenizer(skip_special_tokens=True)
        matcher = StopMatcher(stops) if stops else None
        pending: list[int] = []
        done = False
        try:
            while True:
                with self._lock.call:
                    step = next(gen)
                if step.prefill_total and progress is not None:
                    progress(step.prefill_done, step.prefill_total)
                token, finish = step.token, step.finish_reason
                if token < 0 and finish is None:
                    continue
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


def _config(config: Optional[GenerationConfig], options: Mapping[str, Any]) -> GenerationConfig:
    """``config`` (or the defaults) with ``options`` applied; TypeError/ValueError naming a bad one."""
    if config is not None and not isinstance(config, GenerationConfig):
        raise TypeError(f"config must be an axllm.GenerationConfig or None, got {type(config).__name__}")
    return (config or GenerationConfig()).replace(**options)


def _progress_callable(progress: Optional[PrefillProgress]) -> Optional[PrefillProgress]:
    if progress is not None and not callable(progress):
        raise TypeError("prefill_progress must be callable or None")
    return progress
