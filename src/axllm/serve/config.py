"""``ServeConfig``: the server's limits and options (the command line's flags)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

DEFAULT_MAX_QUEUE = 32
DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_REQUEST_TIMEOUT = 600.0
DEFAULT_COMPLETIONS_MAX_TOKENS = 16


@dataclass(frozen=True)
class ServeConfig:
    """How the server treats requests.

    ``api_key``: when set, every ``/v1/`` request needs ``Authorization: Bearer <api_key>``.
    ``max_queue``: requests allowed to wait while one generates; one more is answered 503 with
    ``Retry-After``. ``kv_slots``: how many recent conversations keep their KV cache in host memory
    (0 keeps only the live cache). ``max_body_bytes``: larger request bodies get 413.
    ``max_prompt_tokens``: longer prompts get 400 (``None``: the model's context length minus one,
    which is also the ceiling). ``request_timeout``: seconds a request may take from arrival,
    queueing included, before its generation is cancelled (``None``: no limit).
    ``model_id``: the name ``/v1/models`` lists (default: the model directory's name).
    """

    api_key: Optional[str] = None
    max_queue: int = DEFAULT_MAX_QUEUE
    kv_slots: int = 0
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    max_prompt_tokens: Optional[int] = None
    request_timeout: Optional[float] = DEFAULT_REQUEST_TIMEOUT
    model_id: Optional[str] = None

    def __post_init__(self) -> None:
        if self.max_queue < 0:
            raise ValueError(f"max_queue must be >= 0, got {self.max_queue}")
        if self.kv_slots < 0:
            raise ValueError(f"kv_slots must be >= 0, got {self.kv_slots}")
        if self.max_body_bytes < 1:
            raise ValueError(f"max_body_bytes must be >= 1, got {self.max_body_bytes}")
        if self.max_prompt_tokens is not None and self.max_prompt_tokens < 1:
            raise ValueError(f"max_prompt_tokens must be >= 1, got {self.max_prompt_tokens}")
        if self.request_timeout is not None and not self.request_timeout > 0:
            raise ValueError(f"request_timeout must be > 0, got {self.request_timeout}")
        if self.api_key is not None and not self.api_key:
            raise ValueError("api_key must not be empty")
