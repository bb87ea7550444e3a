"""Request bodies of ``/v1/chat/completions`` and ``/v1/completions``, checked and parsed.

Field policy (what the server does with each top-level field of a request):

* Honoured: ``messages`` / ``prompt``, ``model`` (any string; one model is served), ``n`` (1
  only), ``stream``, ``stream_options.include_usage``, and every field of
  ``axllm.GenerationConfig`` under its own name (``temperature``, ``top_p``, ``presence_penalty``,
  ``frequency_penalty``, ``seed``, ``stop`` as in OpenAI's API; ``top_k``, ``min_p``,
  ``repetition_penalty``, ``max_new_tokens``, ``overflow`` as axllm extensions), with OpenAI's
  ``max_tokens`` and ``max_completion_tokens`` for ``max_new_tokens`` (``max_completion_tokens``
  wins, then ``max_tokens``). Types and ranges are GenerationConfig's own (one rule for the Python
  API, the REPL and this server); a JSON number with an integral value is accepted for an integer
  field. Text must be valid Unicode (no lone surrogates). Sampling fields left out (or null) fall
  back to the model's own defaults, as ``axllm.LLM`` does; ``/v1/completions`` defaults
  ``max_tokens`` to 16 like OpenAI's API, chat completions run until a stop, EOS or the end of the
  context.
* Accepted and ignored: the rest of OpenAI's request schema that has no effect on a local text
  model (``user``, ``metadata``, ``store``, ``service_tier``, ``parallel_tool_calls``,
  ``reasoning_effort``, ``verbosity``, ``prompt_cache_key``, ``safety_identifier``, ...), and
  features this server lacks when they carry their "off" value (``logprobs: false``,
  ``tools: []``, ``response_format: {"type": "text"}``, ``echo: false``, ``best_of: 1``, ...).
  Any other value of those is 400 ``unsupported_value`` naming the field.
* Anything else is 400 ``unknown_parameter`` naming the field: a misspelt field is reported, never
  silently dropped. The official ``openai`` client only sends the fields its caller passes, all of
  which are in OpenAI's schema, so it never meets this error; extra fields go through
  ``extra_body``.

A wrong JSON type is 400 ``invalid_type``, a value out of range 400 ``invalid_value``; ``param``
names the field (``messages[1].content`` for a message's).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Callable, Optional, Union

from axllm.generation import GenerationConfig
from axllm.serve.errors import BadRequest

ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}
MESSAGE_KEYS = {"role", "content", "name", "refusal", "tool_calls", "function_call", "audio", "annotations"}


@dataclass(frozen=True)
class ChatRequest:
    """A checked ``/v1/chat/completions`` body; ``messages`` hold only role and text content
    (``developer`` is passed to the template as ``system``)."""

    messages: list[dict[str, str]]
    config: GenerationConfig
    stream: bool = False
    include_usage: bool = False


@dataclass(frozen=True)
class CompletionRequest:
    """A checked ``/v1/completions`` body: ``prompt`` is text or token ids."""

    prompt: Union[str, list[int]]
    config: GenerationConfig
    stream: bool = False
    include_usage: bool = False


def _type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _wrong_type(name: str, want: str, value: Any) -> BadRequest:
    return BadRequest(f"'{name}' must be {want}, got {_type_name(value)}", param=name, code="invalid_type")


def _typed(kind: type, want: str) -> Callable[[str, Any], None]:
    """An accepted, ignored field: only its JSON type is checked (null is always fine)."""

    def parse(name: str, value: Any) -> None:
        if value is not None and not isinstance(value, kind):
            raise _wrong_type(name, want, value)

    return parse


def _off(*allowed: Any, describe: str) -> Callable[[str, Any], None]:
    """An OpenAI feature this server lacks: accepted only with its "off" value."""

    def parse(name: str, value: Any) -> None:
        if value is None:
            return
        for ok in allowed:
            if type(value) is type(ok) and value == ok:
                return
        raise BadRequest(
            f"'{name}' is not supported by this server (only {describe})",
            param=name,
            code="unsupported_value",
        )

    return parse


def _unicode(name: str, text: str) -> str:
    """``text`` unless it holds a lone surrogate (JSON allows ``"\\ud800"``; no tokenizer does)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise BadRequest(f"'{name}' is not valid Unicode (it holds a lone surrogate)", param=name) from None
    return text


def _bool(name: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise _wrong_type(name, "a boolean", value)
    return value


def _stream_options(name: str, value: Any) -> bool:
    """``include_usage`` of ``stream_options`` (``include_obfuscation`` is accepted, ignored)."""
    if value is None:
        return False
    if not isinstance(value, dict):
        raise _wrong_type(name, "an object", value)
    for key in value:
        if key not in ("include_usage", "include_obfuscation"):
            raise BadRequest(
                f"unknown parameter '{name}.{key}'", param=f"{name}.{key}", code="unknown_parameter"
            )
    _bool(f"{name}.include_obfuscation", value.get("include_obfuscation"))
    return _bool(f"{name}.include_usage", value.get("include_usage"))


def _model(name: str, value: Any) -> None:
    if value is not None and not isinstance(value, str):
        raise _wrong_type(name, "a string", value)


# Request fields that set a GenerationConfig field: each field under its own name, and OpenAI's
# names for the length (earlier in this list wins when several are given).
LENGTH_FIELDS = ("max_completion_tokens", "max_tokens", "max_new_tokens")
CONFIG_FIELDS: dict[str, str] = {
    **{name: name for name in GenerationConfig.fields},
    "max_tokens": "max_new_tokens",
    "max_completion_tokens": "max_new_tokens",
}
COMMON_IGNORED: dict[str, Callable[[str, Any], Any]] = {
    "model": _model,
    "user": _typed(str, "a string"),
    "n": _off(1, describe="n = 1"),
    "logit_bias": _off({}, describe="an empty object"),
}
CHAT_IGNORED: dict[str, Callable[[str, Any], Any]] = {
    **COMMON_IGNORED,
    "metadata": _typed(dict, "an object"),
    "store": _typed(bool, "a boolean"),
    "service_tier": _typed(str, "a string"),
    "parallel_tool_calls": _typed(bool, "a boolean"),
    "reasoning_effort": _typed(str, "a string"),
    "verbosity": _typed(str, "a string"),
    "prompt_cache_key": _typed(str, "a string"),
    "prompt_cache_retention": _typed(str, "a string"),
    "safety_identifier": _typed(str, "a string"),
    "logprobs": _off(False, describe="false"),
    "top_logprobs": _off(0, describe="0"),
    "response_format": _off({"type": "text"}, describe='{"type": "text"}'),
    "tools": _off([], describe="an empty array"),
    "functions": _off([], describe="an empty array"),
    "tool_choice": _off("none", "auto", describe='"none" or "auto" without tools'),
    "function_call": _off("none", "auto", describe='"none" or "auto" without functions'),
    "modalities": _off(["text"], describe='["text"]'),
    "audio": _off(describe="null"),
    "prediction": _off(describe="null"),
    "web_search_options": _off(describe="null"),
}
COMPLETION_IGNORED: dict[str, Callable[[str, Any], Any]] = {
    **COMMON_IGNORED,
    "logprobs": _off(0, describe="null or 0"),
    "echo": _off(False, describe="false"),
    "best_of": _off(1, describe="1"),
    "suffix": _off("", describe="null or an empty string"),
}
CHAT_FIELDS = {"messages", "stream", "stream_options", *CONFIG_FIELDS, *CHAT_IGNORED}
COMPLETION_FIELDS = {"prompt", "stream", "stream_options", *CONFIG_FIELDS, *COMPLETION_IGNORED}


def _check_fields(
    body: Mapping[str, Any], known: set[str], ignored: Mapping[str, Callable[[str, Any], Any]]
) -> None:
    for name in body:
        if name not in known:
            raise BadRequest(f"unknown parameter '{name}'", param=name, code="unknown_parameter")
    for name, check in ignored.items():
        if name in body:
            check(name, body[name])


def _config(body: Mapping[str, Any], default_max_tokens: Optional[int] = None) -> GenerationConfig:
    """The GenerationConfig a body asks for; BadRequest naming the first field it rejects."""
    config = GenerationConfig()
    length = next((name for name in LENGTH_FIELDS if body.get(name) is not None), None)
    if length is None and default_max_tokens is not None:
        config.max_new_tokens = default_max_tokens
    for name, field in CONFIG_FIELDS.items():
        value = body.get(name)
        if value is None or (field == "max_new_tokens" and name != length):
            continue
        if GenerationConfig.fields[field] == "int" and isinstance(value, float) and value.is_integer():
            value = int(value)
        try:
            setattr(config, field, value)
        except TypeError as e:
            raise BadRequest(f"'{name}': {e}", param=name, code="invalid_type") from None
        except ValueError as e:
            raise BadRequest(f"'{name}': {e}", param=name) from None
    return config


def _content(name: str, value: Any, role: str) -> str:
    if isinstance(value, str):
        return _unicode(name, value)
    if value is None and role == "assistant":
        return ""
    if not isinstance(value, list):
        raise _wrong_type(name, "a string or an array of text parts", value)
    texts = []
    for i, part in enumerate(value):
        where = f"{name}[{i}]"
        if not isinstance(part, dict):
            raise _wrong_type(where, "an object", part)
        if part.get("type") != "text":
            raise BadRequest(
                f"'{where}.type' must be \"text\" (this server reads text only), got {part.get('type')!r}",
                param=f"{where}.type",
                code="unsupported_value",
            )
        for key in part:
            if key not in ("type", "text"):
                raise BadRequest(
                    f"unknown parameter '{where}.{key}'", param=f"{where}.{key}", code="unknown_parameter"
                )
        if not isinstance(part.get("text"), str):
            raise _wrong_type(f"{where}.text", "a string", part.get("text"))
        texts.append(_unicode(f"{where}.text", part["text"]))
    return "".join(texts)


def _message(i: int, message: Any) -> dict[str, str]:
    where = f"messages[{i}]"
    if not isinstance(message, dict):
        raise _wrong_type(where, "an object", message)
    role = message.get("role")
    if not isinstance(role, str):
        raise _wrong_type(f"{where}.role", "a string", role)
    if role not in ROLES:
        raise BadRequest(
            f"'{where}.role' must be one of {sorted(ROLES)} (this server has no tool calling), got {role!r}",
            param=f"{where}.role",
            code="unsupported_value",
        )
    for key in message:
        if key not in MESSAGE_KEYS:
            raise BadRequest(
                f"unknown parameter '{where}.{key}'", param=f"{where}.{key}", code="unknown_parameter"
            )
    if "content" not in message:
        raise BadRequest(
            f"'{where}.content' is required", param=f"{where}.content", code="missing_required_parameter"
        )
    _typed(str, "a string")(f"{where}.name", message.get("name"))
    for key in ("tool_calls", "function_call", "audio"):
        if message.get(key):
            raise BadRequest(
                f"'{where}.{key}' is not supported by this server",
                param=f"{where}.{key}",
                code="unsupported_value",
            )
    return {"role": ROLES[role], "content": _content(f"{where}.content", message["content"], role)}


def parse_chat(body: Mapping[str, Any]) -> ChatRequest:
    """Checks a chat completion body; raises BadRequest naming the first field at fault."""
    _check_fields(body, CHAT_FIELDS, CHAT_IGNORED)
    messages = body.get("messages")
    if messages is None:
        raise BadRequest("'messages' is required", param="messages", code="missing_required_parameter")
    if not isinstance(messages, list):
        raise _wrong_type("messages", "an array", messages)
    if not messages:
        raise BadRequest("'messages' must not be empty", param="messages")
    parsed = [_message(i, m) for i, m in enumerate(messages)]
    stream = _bool("stream", body.get("stream"))
    include_usage = _stream_options("stream_options", body.get("stream_options"))
    return ChatRequest(parsed, _config(body), stream, include_usage and stream)


def _prompt(value: Any) -> Union[str, list[int]]:
    if value is None:
        raise BadRequest("'prompt' is required", param="prompt", code="missing_required_parameter")
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], (str, list)):
        value = value[0]
    if isinstance(value, str):
        if not value:
            raise BadRequest("'prompt' must not be empty", param="prompt")
        return _unicode("prompt", value)
    if not isinstance(value, list):
        raise _wrong_type("prompt", "a string or an array of token ids", value)
    if not value:
        raise BadRequest("'prompt' must not be empty", param="prompt")
    if all(isinstance(t, str) for t in value) or all(isinstance(t, list) for t in value):
        raise BadRequest(
            "'prompt' holds several prompts; this server takes one per request",
            param="prompt",
            code="unsupported_value",
        )
    if not all(isinstance(t, int) and not isinstance(t, bool) for t in value):
        raise _wrong_type("prompt", "a string or an array of integer token ids", value)
    return list(value)


def parse_completion(body: Mapping[str, Any], default_max_tokens: int) -> CompletionRequest:
    """Checks a text completion body; raises BadRequest naming the first field at fault."""
    _check_fields(body, COMPLETION_FIELDS, COMPLETION_IGNORED)
    prompt = _prompt(body.get("prompt"))
    config = _config(body, default_max_tokens)
    if config.overflow == "drop_oldest_turns":
        raise BadRequest(
            "'overflow': drop_oldest_turns needs chat messages (/v1/chat/completions)",
            param="overflow",
            code="unsupported_value",
        )
    stream = _bool("stream", body.get("stream"))
    include_usage = _stream_options("stream_options", body.get("stream_options"))
    return CompletionRequest(prompt, config, stream, include_usage and stream)
