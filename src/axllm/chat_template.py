"""A model's Jinja chat template, rendered as transformers' ``apply_chat_template(tokenize=False)``
renders it.

The environment matches transformers 5.x: ``ImmutableSandboxedEnvironment(trim_blocks=True,
lstrip_blocks=True)`` with ``{% break %}`` / ``{% continue %}`` (``jinja2.ext.loopcontrols``) and
``{% generation %}...{% endgeneration %}`` (rendered as its body); a ``tojson`` filter that keeps
non-ASCII text and HTML characters as they are and takes ``ensure_ascii``, ``indent``,
``separators`` and ``sort_keys``; globals ``raise_exception(message)``, ``strftime_now(format)``
(local time), ``dict(...)`` (and ``dict.fromkeys``) and ``namespace(...)``, whose attribute names
may not start with an underscore.

The data is prepared as transformers prepares it: keys whose value is ``None`` are dropped from
each message; everything the template sees is copied into plain ``dict`` / ``list`` / ``tuple`` /
``str`` / ``int`` / ``float`` / ``bool`` values (numpy scalars become Python scalars, dataclasses
and pydantic models dicts, anything else the string ``"<TypeName>"``); a message carrying
``reasoning_content``, ``thinking`` or ``reasoning`` gets the first non-``None`` of them under both
``thinking`` and ``reasoning_content``. ``bos_token`` / ``eos_token`` are defined in the template
only when given.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
from collections.abc import Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
import jinja2.ext
import jinja2.nodes
import jinja2.sandbox
import jinja2.utils
import numpy as np

from axllm.errors import ModelLoadError, TemplateError

__all__ = ["FALLBACK_ORIGIN", "ChatTemplate"]

logger = logging.getLogger("axllm")

FALLBACK_ORIGIN = "fallback: ChatML"

# ChatML, for models that ship no template: each message as
# "<|im_start|>{role}\n{content}<|im_end|>\n", content lists reduced to their text parts.
_CHATML = (
    "{%- for message in messages -%}"
    "{{- '<|im_start|>' + message['role'] + '\\n' -}}"
    "{%- if message['content'] is string -%}"
    "{{- message['content'] -}}"
    "{%- elif message['content'] is defined -%}"
    "{%- for part in message['content'] -%}"
    "{%- if part is mapping and part['type'] == 'text' -%}{{- part['text'] -}}{%- endif -%}"
    "{%- endfor -%}"
    "{%- endif -%}"
    "{{- '<|im_end|>\\n' -}}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{- '<|im_start|>assistant\\n' -}}{%- endif -%}"
)

_REASONING_KEYS = ("reasoning_content", "thinking", "reasoning")


class _RaisedByTemplate(Exception):
    """``raise_exception(message)`` called from a template; turned into TemplateError naming the
    template's origin."""


def _raise_exception(message: Any) -> None:
    raise _RaisedByTemplate(str(message))


def _tojson(
    value: Any,
    ensure_ascii: bool = False,
    indent: int | str | None = None,
    separators: tuple[str, str] | None = None,
    sort_keys: bool = False,
) -> str:
    return json.dumps(
        value, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys
    )


def _strftime_now(fmt: str) -> str:
    return datetime.now().strftime(fmt)


def _check_attribute_name(name: Any) -> None:
    if isinstance(name, str) and name.startswith("_"):
        raise jinja2.exceptions.SecurityError(
            f"a namespace attribute may not start with an underscore: {name!r}"
        )


class _Namespace(jinja2.utils.Namespace):
    """``namespace()`` whose attributes cannot be underscore-prefixed (``{% set ns._x %}``)."""

    def __setitem__(self, name: str, value: Any) -> None:
        _check_attribute_name(name)
        super().__setitem__(name, value)


def _make_namespace(*args: Any, **kwargs: Any) -> _Namespace:
    attrs = dict(*args, **kwargs)
    for name in attrs:
        _check_attribute_name(name)
    return _Namespace(attrs)


class _DictFactory:
    """The ``dict`` global: callable like ``dict`` and offering ``dict.fromkeys``, nothing else."""

    def __call__(self, *args: Any, **kwargs: Any) -> dict:
        return dict(*args, **kwargs)

    def fromkeys(self, *args: Any) -> dict:
        return dict.fromkeys(*args)


class _GenerationBlock(jinja2.ext.Extension):
    """``{% generation %}...{% endgeneration %}``: transformers marks assistant text with it for
    its assistant-token masks; here the block renders its body unchanged."""

    tags = {"generation"}

    def parse(self, parser: jinja2.parser.Parser) -> jinja2.nodes.Node:
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(("name:endgeneration",), drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_body"), [], [], body).set_lineno(lineno)

    def _body(self, caller: Any) -> str:
        return caller()


def _environment() -> jinja2.sandbox.ImmutableSandboxedEnvironment:
    env = jinja2.sandbox.ImmutableSandboxedEnvironment(
        trim_blocks=True, lstrip_blocks=True, extensions=[_GenerationBlock, jinja2.ext.loopcontrols]
    )
    env.filters["tojson"] = _tojson
    env.globals["raise_exception"] = _raise_exception
    env.globals["strftime_now"] = _strftime_now
    env.globals["dict"] = _DictFactory()
    env.globals["namespace"] = _make_namespace
    return env


_ENV = _environment()


def _plain(value: Any) -> Any:
    """``value`` rebuilt from plain JSON-like types (see the module docstring)."""
    if value is None or type(value) in (str, int, float, bool):
        return value
    if isinstance(value, str):
        return str.__str__(value)
    if isinstance(value, int):
        return int.__int__(value)
    if isinstance(value, float):
        return float.__float__(value)
    if isinstance(value, Mapping):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain(v) for v in value)
    if isinstance(value, np.generic):
        return _plain(value.item())
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if callable(getattr(value, "model_dump", None)):
        return _plain(value.model_dump())
    return f"<{type(value).__name__}>"


def _prepare_messages(messages: Sequence[Mapping]) -> list[dict]:
    if isinstance(messages, (str, bytes, Mapping)) or not isinstance(messages, Sequence):
        raise ValueError(f"messages must be a list of mappings, not {type(messages).__name__}")
    if not messages:
        raise ValueError("messages is empty: a chat needs at least one message")
    prepared = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise ValueError(f"messages[{i}] must be a mapping, not {type(message).__name__}")
        role = message.get("role")
        if not isinstance(role, str):
            raise ValueError(f"messages[{i}]['role'] must be a string, got {role!r}")
        content = message.get("content")
        if content is not None and not isinstance(content, (str, list, tuple)):
            raise ValueError(
                f"messages[{i}]['content'] must be a string, a list or None, not {type(content).__name__}"
            )
        plain = _plain({k: v for k, v in message.items() if v is not None})
        reasoning = next((plain[k] for k in _REASONING_KEYS if plain.get(k) is not None), None)
        if reasoning is not None:
            plain = {"thinking": reasoning, **plain, "reasoning_content": reasoning}
        prepared.append(plain)
    return prepared


def _prepare_list(value: Any, name: str) -> list | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, Sequence):
        raise ValueError(f"{name} must be a list of mappings, not {type(value).__name__}")
    for i, item in enumerate(value):
        if not isinstance(item, Mapping):
            raise ValueError(
                f"{name}[{i}] must be a mapping (a JSON schema for tools), not {type(item).__name__}"
            )
    return _plain(list(value))


def _template_line(error: BaseException) -> int | None:
    """The template line being rendered when ``error`` was raised, if jinja2 recorded one."""
    line = None
    tb = error.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


class ChatTemplate:
    """A compiled chat template. Build with :meth:`from_dir` or :meth:`from_string`."""

    source: str
    """The template text."""
    origin: str
    """Where the text came from: a file path, ``"fallback: ChatML"`` or the ``origin`` given to
    :meth:`from_string`."""
    sha256: str
    """Hex SHA-256 of the UTF-8 template text."""

    def __init__(self, source: str, origin: str) -> None:
        """Compile ``source``; raises TemplateError naming ``origin`` on a syntax error."""
        if not isinstance(source, str):
            raise TypeError(f"template source must be a str, not {type(source).__name__}")
        self.source = source
        self.origin = origin
        self.sha256 = hashlib.sha256(source.encode("utf-8")).hexdigest()
        try:
            self._template = _ENV.from_string(source)
        except jinja2.TemplateSyntaxError as e:
            raise TemplateError(f"{origin}: line {e.lineno}: syntax error: {e.message}") from e

    @classmethod
    def from_string(cls, text: str, origin: str = "<string>") -> ChatTemplate:
        return cls(text, origin)

    @classmethod
    def from_dir(cls, directory: str | os.PathLike) -> ChatTemplate:
        """The template of the model whose tokenizer files are in ``directory``.

        Looked up as transformers does: ``chat_template.jinja`` first (transformers lets that
        file override the config), then ``tokenizer_config.json``'s ``"chat_template"`` (a
        string, or a list of ``{"name", "template"}`` of which ``"default"`` is taken), then the
        legacy ``chat_template.json`` (``{"chat_template": ...}``). Without any of them, a ChatML
        template with a warning on the ``axllm`` logger. Raises ``ModelLoadError`` if
        ``directory`` is not a directory or a config is not valid JSON, ``TemplateError`` if the
        template entry is malformed or does not compile.
        """
        directory = Path(directory)
        if not directory.is_dir():
            raise ModelLoadError(f"{directory}: not a directory")
        jinja_file = directory / "chat_template.jinja"
        if jinja_file.is_file():
            return cls(_read_text(jinja_file), str(jinja_file))
        config_file = directory / "tokenizer_config.json"
        if config_file.is_file():
            config = _read_json_object(config_file)
            if config.get("chat_template") is not None:
                return cls(_select(config["chat_template"], config_file), str(config_file))
        json_file = directory / "chat_template.json"
        if json_file.is_file():
            entry = _read_json_object(json_file).get("chat_template")
            if entry is not None:
                return cls(_select(entry, json_file), str(json_file))
        logger.warning(
            "%s: no chat template (chat_template.jinja, tokenizer_config.json, chat_template.json);"
            " using ChatML",
            directory,
        )
        return cls(_CHATML, FALLBACK_ORIGIN)

    def render(
        self,
        messages: Sequence[Mapping],
        *,
        add_generation_prompt: bool = True,
        bos_token: str | None = None,
        eos_token: str | None = None,
        tools: Sequence[Mapping] | None = None,
        documents: Sequence[Mapping] | None = None,
        **kwargs: Any,
    ) -> str:
        """The prompt text for ``messages``.

        ``messages`` is a list of mappings, each with a string ``"role"`` and a ``"content"`` that
        is a string, a list (multimodal parts) or ``None``/absent (e.g. with ``tool_calls``);
        otherwise ``ValueError`` naming the index. ``tools`` and ``documents`` are lists of
        mappings (JSON schemas for tools). Extra keyword arguments (``enable_thinking`` ...) are
        template variables. A failure inside the template, ``raise_exception`` included, raises
        TemplateError naming the origin.
        """
        context: dict[str, Any] = {
            "messages": _prepare_messages(messages),
            "tools": _prepare_list(tools, "tools"),
            "documents": _prepare_list(documents, "documents"),
            "add_generation_prompt": bool(add_generation_prompt),
        }
        if bos_token is not None:
            context["bos_token"] = bos_token
        if eos_token is not None:
            context["eos_token"] = eos_token
        context.update(_plain(kwargs))
        try:
            return self._template.render(**context)
        except _RaisedByTemplate as e:
            raise TemplateError(f"{self.origin}: {e}") from e
        except Exception as e:  # anything the template does wrong is the template's error
            line = _template_line(e)
            where = f"line {line}: " if line is not None else ""
            raise TemplateError(f"{self.origin}: {where}{type(e).__name__}: {e}") from e

    def __repr__(self) -> str:
        return f"ChatTemplate(origin={self.origin!r}, sha256={self.sha256[:12]})"


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise ModelLoadError(f"{path}: cannot read: {e}") from e


def _read_json_object(path: Path) -> dict[str, Any]:
    try:
        value = json.loads(_read_text(path))
    except json.JSONDecodeError as e:
        raise ModelLoadError(f"{path}: not valid JSON: {e}") from e
    if not isinstance(value, dict):
        raise ModelLoadError(f"{path}: expected a JSON object, found {type(value).__name__}")
    return value


def _select(entry: Any, source: Path) -> str:
    """The template text of a ``chat_template`` entry: a string, or the ``"default"`` item of a
    list of ``{"name": ..., "template": ...}``."""
    if isinstance(entry, str):
        return entry
    if isinstance(entry, list):
        named = {}
        for item in entry:
            if not (
                isinstance(item, dict)
                and isinstance(item.get("name"), str)
                and isinstance(item.get("template"), str)
            ):
                raise TemplateError(
                    f"{source}: chat_template list items must be "
                    f'{{"name": str, "template": str}}, found {item!r}'
                )
            named[item["name"]] = item["template"]
        if "default" not in named:
            raise TemplateError(f"{source}: chat_template has no 'default' entry (names: {sorted(named)})")
        return named["default"]
    raise TemplateError(
        f"{source}: chat_template must be a string or a list of named templates, found {type(entry).__name__}"
    )
