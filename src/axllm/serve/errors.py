"""The errors the server answers with, in OpenAI's JSON shape.

Every failure a request can meet is an :class:`APIError` carrying its HTTP status and the four
fields of OpenAI's error object: ``{"error": {"message", "type", "param", "code"}}``. Handlers
raise them; the app turns them into responses (or, once a stream has started, into a final
server-sent event holding the same object).

=======================  ======  ========================  ===================================
class                    status  type                      codes
=======================  ======  ========================  ===================================
``BadRequest``           400     ``invalid_request_error`` ``invalid_json``, ``invalid_type``,
                                                           ``invalid_value``, ``unknown_parameter``,
                                                           ``unsupported_value``,
                                                           ``missing_required_parameter``,
                                                           ``context_length_exceeded``
``Unauthorized``         401     ``invalid_request_error`` ``invalid_api_key``
``NotFound``             404     ``invalid_request_error`` ``not_found``, ``model_not_found``
``MethodNotAllowed``     405     ``invalid_request_error`` ``method_not_allowed``
``PayloadTooLarge``      413     ``invalid_request_error`` ``request_too_large``
``QueueFull``            503     ``server_error``          ``queue_full`` (with ``Retry-After``)
``RequestTimedOut``      503     ``timeout_error``         ``request_timeout`` (with ``Retry-After``)
``EngineFailure``        500     ``server_error``          ``engine_error``
=======================  ======  ========================  ===================================
"""

from __future__ import annotations

from typing import Any, Optional


class APIError(Exception):
    """A request failure: ``status`` is the HTTP status, ``headers`` extra response headers; the
    rest are the fields of OpenAI's error object."""

    status = 500
    type = "server_error"
    default_code = "internal_error"

    def __init__(
        self,
        message: str,
        *,
        param: Optional[str] = None,
        code: Optional[str] = None,
        headers: Optional[dict[str, str]] = None,
    ):
        super().__init__(message)
        self.message = message
        self.param = param
        self.code = code or self.default_code
        self.headers = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The JSON object sent to the client."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


class BadRequest(APIError):
    """400: the request is malformed, has a field of the wrong type or value, an unknown field, or a
    prompt longer than the server accepts."""

    status = 400
    type = "invalid_request_error"
    default_code = "invalid_value"


class Unauthorized(APIError):
    """401: the ``Authorization: Bearer`` key is missing or wrong."""

    status = 401
    type = "invalid_request_error"
    default_code = "invalid_api_key"


class NotFound(APIError):
    """404: no such route or model."""

    status = 404
    type = "invalid_request_error"
    default_code = "not_found"


class MethodNotAllowed(APIError):
    """405: the route exists but not for this HTTP method."""

    status = 405
    type = "invalid_request_error"
    default_code = "method_not_allowed"


class PayloadTooLarge(APIError):
    """413: the request body is larger than ``--max-body-bytes``."""

    status = 413
    type = "invalid_request_error"
    default_code = "request_too_large"


class RetryLater(APIError):
    """A 503 that tells the client when to try again (``Retry-After``, in seconds)."""

    status = 503

    def __init__(self, message: str, retry_after: int):
        super().__init__(message, headers={"Retry-After": str(retry_after)})
        self.retry_after = retry_after


class QueueFull(RetryLater):
    """503 with ``Retry-After``: ``--max-queue`` requests are already waiting for the model."""

    type = "server_error"
    default_code = "queue_full"


class RequestTimedOut(RetryLater):
    """503 with ``Retry-After``: the request ran past ``--request-timeout`` (waiting included); its
    generation was cancelled."""

    type = "timeout_error"
    default_code = "request_timeout"


class EngineFailure(APIError):
    """500: the runtime failed while generating (an ``axllm.AxllmError`` or an unexpected
    exception); the engine is free again when this is sent."""

    status = 500
    type = "server_error"
    default_code = "engine_error"
