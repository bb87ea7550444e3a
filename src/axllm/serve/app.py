"""The Starlette application: routes, API key, body limits, prompt limits and error responses.

Routes: ``POST /v1/chat/completions``, ``POST /v1/completions``, ``GET /v1/models``,
``GET /v1/models/{id}``, ``GET /health`` (never needs the API key). Every error, including unknown
routes (404), wrong methods (405) and unexpected exceptions (500), is answered in OpenAI's error
shape (see ``axllm.serve.errors``). Checks run in this order: API key (401), body size (413),
JSON syntax and fields (400), prompt length (400 ``context_length_exceeded``), queue (503).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import time
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager
from typing import Any, Callable, Optional, TypeVar, Union

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from axllm.errors import ContextOverflowError, TemplateError
from axllm.generation import GenerationConfig
from axllm.llm import LLM
from axllm.serve.config import DEFAULT_COMPLETIONS_MAX_TOKENS, ServeConfig
from axllm.serve.errors import (
    APIError,
    BadRequest,
    EngineFailure,
    MethodNotAllowed,
    NotFound,
    PayloadTooLarge,
    Unauthorized,
)
from axllm.serve.model_queue import ModelQueue
from axllm.serve.params import parse_chat, parse_completion
from axllm.serve.protocol import Reply
from axllm.serve.responses import GenerationResponse, stream_reply, whole_reply

logger = logging.getLogger("axllm.serve")
T = TypeVar("T")
INLINE_TOKENIZE_BYTES = 8 << 10


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


async def _tokenize(
    body_bytes: int, fn: Callable[[T, GenerationConfig], list[int]], arg: T, config: GenerationConfig
) -> list[int]:
    """``fn(arg, config)`` on the event loop for small bodies (a thread hop costs more than their
    tokenization), on a worker thread for larger ones so the loop keeps serving streams."""
    if body_bytes <= INLINE_TOKENIZE_BYTES:
        return fn(arg, config)
    return await asyncio.get_running_loop().run_in_executor(None, fn, arg, config)


def _too_long(needed: int, limit: int, context: int, param: str) -> BadRequest:
    return BadRequest(
        f"the prompt has {needed} tokens but this server accepts at most {limit} (the "
        f"model's context holds {context} tokens, prompt and reply together)",
        param=param,
        code="context_length_exceeded",
    )


class Server:
    """The request handlers of one model; ``queue`` runs the generations."""

    def __init__(self, llm: LLM, config: ServeConfig):
        self.llm = llm
        self.config = config
        self.model_id = config.model_id or llm.path.resolve().name
        self.context_length = llm.context_length
        limit = self.context_length - 1
        self.max_prompt_tokens = min(config.max_prompt_tokens or limit, limit)
        self.vocab = int(llm.geometry["vocab"])
        self.queue = ModelQueue(llm, max_queue=config.max_queue, kv_slots=config.kv_slots)
        try:
            self.created = int(llm.path.stat().st_mtime)
        except OSError:
            self.created = int(time.time())

    def authorize(self, request: Request) -> None:
        """Raises Unauthorized unless the request carries the API key (when one is set)."""
        key = self.config.api_key
        if key is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not given.strip():
            raise Unauthorized("missing API key: send the header 'Authorization: Bearer <key>'")
        if not hmac.compare_digest(given.strip().encode("utf-8"), key.encode("utf-8")):
            raise Unauthorized("incorrect API key")

    async def read_json(self, request: Request) -> tuple[dict[str, Any], int]:
        """The request body as a JSON object, and its size in bytes; PayloadTooLarge past
        ``max_body_bytes``, BadRequest when it is not a JSON object."""
        limit = self.config.max_body_bytes
        too_large = PayloadTooLarge(
            f"the request body is larger than this server accepts (--max-body-bytes {limit})"
        )
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > limit:
            raise too_large
        parts, size = [], 0
        async for part in request.stream():
            size += len(part)
            if size > limit:
                raise too_large
            parts.append(part)
        raw = b"".join(parts)
        try:
            body = json.loads(raw, parse_constant=_reject_constant)
        except (ValueError, RecursionError) as e:
            raise BadRequest(f"the request body is not valid JSON: {e}", code="invalid_json") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object", code="invalid_json")
        return body, size

    def _chat_ids(self, messages: list[dict[str, str]], config: GenerationConfig) -> list[int]:
        try:
            return self.llm.chat_prompt(messages, config)
        except TemplateError as e:
            raise BadRequest(f"the chat template rejected the messages: {e}", param="messages") from None
        except ContextOverflowError as e:
            raise _too_long(e.needed, e.available, self.context_length, "messages") from None

    def _text_ids(self, prompt: Union[str, list[int]], config: GenerationConfig) -> list[int]:
        if isinstance(prompt, str):
            return self.llm.tokenize(prompt)
        bad = [t for t in prompt if not 0 <= t < self.vocab]
        if bad:
            raise BadRequest(
                f"prompt token id {bad[0]} is outside the vocabulary [0, {self.vocab})", param="prompt"
            )
        return prompt

    def check_prompt(self, ids: list[int], config: GenerationConfig, param: str) -> list[int]:
        """The prompt to run: ``ids`` fitted per the request's ``overflow`` (``truncate_left`` keeps
        the newest tokens within the context's and the server's limits; ``drop_oldest_turns`` was
        applied to the messages already); BadRequest (``context_length_exceeded``) for an empty
        prompt or one still longer than ``--max-prompt-tokens``."""
        if not ids:
            raise BadRequest("the prompt is empty after tokenization", param=param)
        if config.overflow == "truncate_left":  # the newest tokens within both limits
            try:
                ids = self.llm.prompt_ids(ids, config)[-self.max_prompt_tokens :]
            except ContextOverflowError as e:
                raise _too_long(e.needed, e.available, self.context_length, param) from None
        if len(ids) > self.max_prompt_tokens:
            raise _too_long(len(ids), self.max_prompt_tokens, self.context_length, param)
        return ids

    def _respond(
        self,
        arrival: float,
        reply: Reply,
        ids: list[int],
        config: GenerationConfig,
        stream: bool,
        include_usage: bool,
    ) -> GenerationResponse:
        """The generation's response; ``max_new_tokens`` is capped at the context length (a
        generation ends there anyway, with finish reason ``length``). The prompt is already
        fitted, so the generation runs with ``overflow="error"``."""
        config = config.replace(
            max_new_tokens=min(config.max_new_tokens or self.context_length, self.context_length),
            overflow="error",
        )
        timeout = self.config.request_timeout
        produce = (
            stream_reply(self.queue, reply, ids, config, include_usage)
            if stream
            else whole_reply(self.queue, reply, ids, config)
        )
        return GenerationResponse(
            produce,
            deadline=None if timeout is None else arrival + timeout,
            timeout=timeout,
            retry_after=self.queue.retry_after,
        )

    async def chat_completions(self, request: Request) -> GenerationResponse:
        arrival = time.monotonic()
        self.authorize(request)
        body, size = await self.read_json(request)
        req = parse_chat(body)
        ids = await _tokenize(size, self._chat_ids, req.messages, req.config)
        ids = self.check_prompt(ids, req.config, "messages")
        return self._respond(
            arrival, Reply(self.model_id, chat=True), ids, req.config, req.stream, req.include_usage
        )

    async def completions(self, request: Request) -> GenerationResponse:
        arrival = time.monotonic()
        self.authorize(request)
        body, size = await self.read_json(request)
        req = parse_completion(body, DEFAULT_COMPLETIONS_MAX_TOKENS)
        ids = await _tokenize(size, self._text_ids, req.prompt, req.config)
        ids = self.check_prompt(ids, req.config, "prompt")
        return self._respond(
            arrival, Reply(self.model_id, chat=False), ids, req.config, req.stream, req.include_usage
        )

    def _model(self) -> dict[str, Any]:
        return {"id": self.model_id, "object": "model", "created": self.created, "owned_by": "axllm"}

    async def models(self, request: Request) -> JSONResponse:
        self.authorize(request)
        return JSONResponse({"object": "list", "data": [self._model()]})

    async def model(self, request: Request) -> JSONResponse:
        self.authorize(request)
        name = request.path_params["model_id"]
        if name != self.model_id:
            raise NotFound(
                f"the model '{name}' does not exist; this server serves '{self.model_id}'",
                param="model",
                code="model_not_found",
            )
        return JSONResponse(self._model())

    async def health(self, request: Request) -> JSONResponse:
        queue = self.queue
        return JSONResponse(
            {
                "status": "ok",
                "model": self.model_id,
                "busy": queue.busy,
                "waiting": queue.waiting,
                "max_queue": queue.max_queue,
                "requests": dict(queue.counts),
                "kv_slots": {
                    "used": len(queue.slots),
                    "capacity": queue.slots.capacity,
                    "bytes": queue.slots.nbytes,
                },
            }
        )


def _error_response(error: APIError) -> JSONResponse:
    return JSONResponse(error.body(), status_code=error.status, headers=error.headers)


async def _api_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, APIError)
    return _error_response(exc)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if exc.status_code == 404:
        return _error_response(NotFound(f"no route {request.method} {request.url.path}"))
    if exc.status_code == 405:
        error = MethodNotAllowed(
            f"{request.method} is not allowed on {request.url.path}", headers=dict(exc.headers or {})
        )
        return _error_response(error)
    status = exc.status_code
    other = BadRequest(str(exc.detail)) if 400 <= status < 500 else EngineFailure(str(exc.detail))
    other.status = status
    return _error_response(other)


async def _internal_error(request: Request, exc: Exception) -> Response:
    logger.error("axllm.serve: unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return _error_response(EngineFailure(f"internal error: {type(exc).__name__}", code="internal_error"))


def _lifespan(server: Server) -> Callable[[Starlette], AbstractAsyncContextManager[None]]:
    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            server.queue.close()

    return lifespan


def create_app(llm: LLM, config: Optional[ServeConfig] = None) -> Starlette:
    """The ASGI application serving ``llm`` with ``config``; ``app.state.server`` is its
    ``Server``. The application must be served by one event loop (one uvicorn worker); its
    lifespan shutdown ends the model thread."""
    server = Server(llm, config or ServeConfig())
    routes = [
        Route("/v1/chat/completions", server.chat_completions, methods=["POST"]),
        Route("/v1/completions", server.completions, methods=["POST"]),
        Route("/v1/models", server.models, methods=["GET"]),
        Route("/v1/models/{model_id:path}", server.model, methods=["GET"]),
        Route("/health", server.health, methods=["GET"]),
    ]
    app = Starlette(
        routes=routes,
        exception_handlers={APIError: _api_error, HTTPException: _http_error, Exception: _internal_error},
        lifespan=_lifespan(server),
    )
    app.state.server = server
    return app
