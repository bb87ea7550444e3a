"""``axllm.serve``: an OpenAI-compatible HTTP server for one model (``python -m axllm.serve``).

Install with ``pip install "pyaxllm[serve]"`` (Starlette and uvicorn). ``create_app(llm, config)``
makes the ASGI application; ``python -m axllm.serve MODEL`` loads a model and serves it with
uvicorn (see ``axllm.serve.__main__`` for the flags).

Endpoints: ``POST /v1/chat/completions`` and ``POST /v1/completions`` (JSON or server-sent-event
streams in OpenAI's chunk format), ``GET /v1/models``, ``GET /v1/models/{id}``, ``GET /health``.
One model, one queue: requests run one at a time in arrival order, on one model thread; a client
that disconnects cancels its generation at once. Modules: ``app`` (routes, limits), ``params``
(request fields and the unknown-field policy), ``protocol`` (response objects, usage, the ``axllm``
extension field), ``responses`` (streaming, disconnect and timeout handling), ``model_queue`` (the
request queue and its model thread, KV slots), ``slots`` (KV snapshots of recent conversations),
``errors`` (status codes and error shape), ``config`` (limits).
"""

from __future__ import annotations

from axllm.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]


def __getattr__(name: str):
    # The app needs Starlette (the "serve" extra); importing the config alone does not.
    if name == "create_app":
        from axllm.serve.app import create_app

        return create_app
    raise AttributeError(f"module 'axllm.serve' has no attribute {name!r}")
