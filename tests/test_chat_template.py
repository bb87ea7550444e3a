"""ChatTemplate renders as transformers' apply_chat_template(tokenize=False) does: templates written
here after common families, and the real Qwen2.5 and SmolLM2 templates (real_model)."""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import datetime
from pathlib import Path

import pytest
import transformers
from tokenizers import AddedToken, decoders, models, pre_tokenizers
from tokenizers import Tokenizer as Backend

from axllm.chat_template import FALLBACK_ORIGIN, ChatTemplate
from axllm.errors import ModelLoadError, TemplateError

BOS, EOS = "<|begin_of_text|>", "<|eot_id|>"

# Llama-3 style: BOS, header ids, trimmed content; block tags on their own indented lines, which
# lstrip_blocks and trim_blocks remove.
LLAMA3 = """{{- bos_token -}}
{% for message in messages %}
    {% set header = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' %}
    {% set content = header + message['content'] | trim + '<|eot_id|>' %}
    {{- content -}}
{% endfor %}
{% if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}
{% endif %}
"""

# Mistral style: user/assistant must alternate, else raise_exception.
MISTRAL = (
    "{{ bos_token }}{% for message in messages %}"
    "{% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}"
    "{{ raise_exception('Conversation roles must alternate user/assistant/user/assistant/...') }}"
    "{% endif %}"
    "{% if message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
    "{% elif message['role'] == 'assistant' %}{{ message['content'] + eos_token }}"
    "{% endif %}{% endfor %}"
)

# Tools rendered with every tojson option, then ChatML turns.
TOOLS = """{%- if tools %}
<tools>
{% for tool in tools %}
{{ tool | tojson }}
{{ tool | tojson(indent=2) }}
{{ tool | tojson(separators=(',', ':'), sort_keys=true) }}
{{ tool['function']['name'] | tojson(ensure_ascii=true) }}
{% endfor %}
</tools>
{% endif %}
{%- for message in messages %}
<|im_start|>{{ message.role }}
{{ message.content }}<|im_end|>
{% endfor %}
{%- if add_generation_prompt %}<|im_start|>assistant
{% endif %}"""

# Loop controls, namespace, dict(), an extra kwarg, a {% generation %} block.
LOOPS = """{%- set ns = namespace(turns=0, last='') %}
{%- for message in messages %}
    {%- if message['role'] == 'system' %}{% continue %}{% endif %}
    {%- if ns.turns >= 3 %}{% break %}{% endif %}
    {%- set ns.turns = ns.turns + 1 %}
    {%- set ns.last = message['role'] %}
    {%- set meta = dict(n=ns.turns, role=message['role']) %}
[{{ meta.n }}:{{ meta.role }}]
    {%- if message['role'] == 'assistant' %}
        {%- generation %}{{ message['content'] }}{% endgeneration %}
    {%- else %}{{ message['content'] }}{% endif %}
{% endfor %}
{%- if add_generation_prompt %}[next after {{ ns.last }}]
    {%- if enable_thinking is defined and not enable_thinking %}<think>

</think>
{% endif %}
{%- endif %}"""

TEMPLATES = {"llama3": LLAMA3, "mistral": MISTRAL, "tools": TOOLS, "loops": LOOPS}

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "météo_actuelle",
        "description": 'Donne la météo à Zürich — 東京の天気も <b>&</b> "quoted"',
        "parameters": {
            "type": "object",
            "required": ["ville"],
            "properties": {
                "ville": {"type": "string", "enum": ["Zürich", "東京"]},
                "unité": {"type": "string"},
            },
        },
    },
}

CONVERSATIONS = {
    "single": [{"role": "user", "content": "Hello!"}],
    "system": [
        {"role": "system", "content": "You are terse."},
        {"role": "user", "content": "  What is 2+2?  "},
    ],
    "multi_turn": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello, how can I help?"},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"},
        {"role": "user", "content": "Why?"},
    ],
    "non_ascii": [
        {"role": "system", "content": "Réponds en français 🇫🇷"},
        {"role": "user", "content": "日本語で答えて：東京の天気は？😀\n\tタブ"},
        {"role": "assistant", "content": "晴れです ☀️ — «très» bien"},
        {"role": "user", "content": "Ωμέγα, привет, عربى"},
    ],
}


def byte_level_dir(directory: Path, config: dict) -> Path:
    """A minimal tokenizer directory, enough for transformers to load and render templates."""
    alphabet = sorted(pre_tokenizers.ByteLevel.alphabet())
    backend = Backend(models.BPE(vocab={c: i for i, c in enumerate(alphabet)}, merges=[]))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    backend.add_special_tokens([AddedToken(BOS, normalized=False), AddedToken(EOS, normalized=False)])
    directory.mkdir(parents=True, exist_ok=True)
    backend.save(str(directory / "tokenizer.json"))
    (directory / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return directory


@pytest.fixture(scope="module")
def hf(tmp_path_factory):
    directory = byte_level_dir(
        tmp_path_factory.mktemp("tpl"),
        {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS},
    )
    return transformers.AutoTokenizer.from_pretrained(str(directory))


def reference(hf, template: str, messages, add_generation_prompt: bool, **kwargs) -> str:
    return hf.apply_chat_template(
        messages,
        chat_template=template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
        **kwargs,
    )


def cases():
    for name in TEMPLATES:
        for conversation in CONVERSATIONS:
            if name == "mistral" and conversation in ("system", "non_ascii"):
                continue  # rejected by the template; see test_raise_exception
            for add in (True, False):
                yield name, conversation, add


@pytest.mark.parametrize(("name", "conversation", "add"), list(cases()))
def test_render_matches_transformers(hf, name: str, conversation: str, add: bool) -> None:
    template = ChatTemplate.from_string(TEMPLATES[name], origin=name)
    messages = CONVERSATIONS[conversation]
    kwargs = {"tools": [WEATHER_TOOL]} if name == "tools" else {}
    ours = template.render(messages, add_generation_prompt=add, bos_token=BOS, eos_token=EOS, **kwargs)
    assert ours == reference(hf, TEMPLATES[name], messages, add, **kwargs)
    first_turn = next(m for m in messages if m["role"] != "system")
    assert first_turn["content"].strip() in ours


def test_rendered_layout_is_what_the_templates_say() -> None:
    """Independent of transformers: the exact text for one case per template."""
    hi = [{"role": "user", "content": " Hi "}]
    assert ChatTemplate.from_string(LLAMA3).render(hi, bos_token=BOS) == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )
    rendered = ChatTemplate.from_string(TOOLS).render(hi, tools=[WEATHER_TOOL])
    assert '"name": "météo_actuelle"' in rendered
    assert "<b>&</b>" in rendered and '"\\u00e9t\\u00e9o' not in rendered.split("\n")[1]
    assert '"m\\u00e9t\\u00e9o_actuelle"' in rendered  # the ensure_ascii=true line
    assert '{"function":{"description":' in rendered  # separators + sort_keys
    assert '\n  "type": "function",\n' in rendered  # indent=2
    chat = CONVERSATIONS["multi_turn"]
    # trim_blocks eats the newline after {% endif %}; {% break %} stops after three turns.
    assert ChatTemplate.from_string(LOOPS).render(chat, enable_thinking=False) == (
        "[1:user]Hi[2:assistant]Hello, how can I help?[3:user]Tell me a joke."
        "[next after user]<think>\n\n</think>\n"
    )


def test_extra_kwargs_reach_the_template(hf) -> None:
    chat = CONVERSATIONS["system"]
    for thinking in (True, False):
        ours = ChatTemplate.from_string(LOOPS).render(chat, enable_thinking=thinking)
        assert ours == reference(hf, LOOPS, chat, True, enable_thinking=thinking)
        assert ("<think>" in ours) is (not thinking)


def test_message_preparation_matches_transformers(hf) -> None:
    """None-valued keys dropped, reasoning fields aliased, list content passed through."""
    template = (
        "{% for m in messages %}{{ m.role }}|{{ m.content is defined }}|"
        "{{ m.reasoning_content | default('-') }}|{{ m.thinking | default('-') }}|"
        "{{ m.tool_calls | default([]) | tojson }}|"
        "{% if m.content is not string and m.content is defined %}"
        "{% for part in m.content %}{{ part.type }}:{{ part.text | default('') }};{% endfor %}"
        "{% else %}{{ m.content | default('') }}{% endif %}¶{% endfor %}"
    )
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "look"}, {"type": "image"}]},
        {
            "role": "assistant",
            "content": None,
            "reasoning": "hmm",
            "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": {"x": 1}}}],
        },
        {"role": "tool", "content": "42", "thinking": None},
    ]
    ours = ChatTemplate.from_string(template).render(messages, add_generation_prompt=False)
    assert ours == reference(hf, template, messages, False)
    assert ours.split("¶")[1].startswith("assistant|False|hmm|hmm|")


def test_raise_exception_becomes_template_error(hf) -> None:
    template = ChatTemplate.from_string(MISTRAL, origin="mistral-style")
    bad = CONVERSATIONS["system"]
    with pytest.raises(TemplateError, match=r"^mistral-style: Conversation roles must alternate"):
        template.render(bad, bos_token=BOS, eos_token=EOS)
    with pytest.raises(Exception, match="Conversation roles must alternate"):
        reference(hf, MISTRAL, bad, True)


@pytest.mark.parametrize(
    ("source", "pattern"),
    [
        ("{% for m in messages %}{{ m.role }", r"^bad\.jinja: line 1: syntax error"),
        ("line one\n{% if messages %}\n{% endfor %}", r"^bad\.jinja: line 3: syntax error"),
        ("{% generation %}unclosed", r"^bad\.jinja: line 1: syntax error"),
    ],
)
def test_syntax_errors_name_origin_and_line(source: str, pattern: str) -> None:
    with pytest.raises(TemplateError, match=pattern):
        ChatTemplate.from_string(source, origin="bad.jinja")


@pytest.mark.parametrize(
    ("source", "pattern"),
    [
        ("ok\n{{ messages[0]['content'] + 1 }}", r"^rt\.jinja: line 2: TypeError"),
        ("{{ messages[5].content.upper() }}", r"^rt\.jinja: .*UndefinedError"),
        ("{{ 1 // 0 }}", r"^rt\.jinja: line 1: ZeroDivisionError"),
        ("{{ messages.__class__.__mro__ }}", r"^rt\.jinja: line 1: SecurityError: .*__class__"),
        ("{% set ns = namespace(_x=1) %}", r"^rt\.jinja: .*SecurityError.*underscore"),
        ("{% set ns = namespace() %}{% set ns._y = 1 %}", r"^rt\.jinja: .*SecurityError"),
        ("{{ messages.append(1) }}", r"^rt\.jinja: .*SecurityError"),
    ],
)
def test_runtime_errors_name_origin(source: str, pattern: str) -> None:
    with pytest.raises(TemplateError, match=pattern):
        ChatTemplate.from_string(source, origin="rt.jinja").render(CONVERSATIONS["single"])


@pytest.mark.parametrize(
    ("messages", "pattern"),
    [
        ([], "empty"),
        ("hello", "list of mappings"),
        ({"role": "user", "content": "x"}, "list of mappings"),
        ([{"role": "user", "content": "x"}, "oops"], r"messages\[1\] must be a mapping"),
        ([{"content": "x"}], r"messages\[0\]\['role'\] must be a string"),
        ([{"role": "user", "content": "a"}, {"role": 3, "content": "b"}], r"messages\[1\]\['role'\]"),
        ([{"role": "user", "content": 7}], r"messages\[0\]\['content'\] must be"),
    ],
)
def test_invalid_messages_raise_value_error(messages, pattern: str) -> None:
    with pytest.raises(ValueError, match=pattern):
        ChatTemplate.from_string(LLAMA3).render(messages)


def test_invalid_tools_raise_value_error() -> None:
    with pytest.raises(ValueError, match=r"tools\[0\] must be a mapping"):
        ChatTemplate.from_string(TOOLS).render(CONVERSATIONS["single"], tools=[print])


def test_strftime_now_and_sha256() -> None:
    template = ChatTemplate.from_string("{{ strftime_now('%Y') }}")
    assert template.render(CONVERSATIONS["single"]) == str(datetime.now().year)
    assert template.sha256 == hashlib.sha256(b"{{ strftime_now('%Y') }}").hexdigest()
    assert template.source == "{{ strftime_now('%Y') }}" and template.origin == "<string>"


# --- loading from a directory -----------------------------------------------------------------


def test_from_dir_sources_agree_with_transformers(tmp_path: Path) -> None:
    base = {"tokenizer_class": "PreTrainedTokenizerFast", "bos_token": BOS, "eos_token": EOS}
    layouts = {
        "config_string": ({**base, "chat_template": MISTRAL}, {}),
        "config_list": (
            {
                **base,
                "chat_template": [
                    {"name": "tool_use", "template": TOOLS},
                    {"name": "default", "template": LLAMA3},
                ],
            },
            {},
        ),
        "jinja_file": (base, {"chat_template.jinja": LOOPS}),
        "jinja_beats_config": ({**base, "chat_template": MISTRAL}, {"chat_template.jinja": LLAMA3}),
    }
    expected_source = {
        "config_string": MISTRAL,
        "config_list": LLAMA3,
        "jinja_file": LOOPS,
        "jinja_beats_config": LLAMA3,
    }
    expected_origin = {
        "config_string": "tokenizer_config.json",
        "config_list": "tokenizer_config.json",
        "jinja_file": "chat_template.jinja",
        "jinja_beats_config": "chat_template.jinja",
    }
    chat = CONVERSATIONS["multi_turn"]
    for name, (config, files) in layouts.items():
        directory = byte_level_dir(tmp_path / name, config)
        for file_name, text in files.items():
            (directory / file_name).write_text(text, encoding="utf-8")
        ours = ChatTemplate.from_dir(directory)
        assert ours.source == expected_source[name], name
        assert ours.origin == str(directory / expected_origin[name])
        theirs = transformers.AutoTokenizer.from_pretrained(str(directory))
        assert ours.render(chat, bos_token=BOS, eos_token=EOS) == theirs.apply_chat_template(
            chat, tokenize=False, add_generation_prompt=True
        ), name


def test_from_dir_legacy_chat_template_json(tmp_path: Path) -> None:
    (tmp_path / "chat_template.json").write_text(json.dumps({"chat_template": LLAMA3}))
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": BOS}))
    template = ChatTemplate.from_dir(tmp_path)
    assert template.source == LLAMA3
    assert template.origin == str(tmp_path / "chat_template.json")


def test_from_dir_errors(tmp_path: Path) -> None:
    with pytest.raises(ModelLoadError, match="not a directory"):
        ChatTemplate.from_dir(tmp_path / "missing")
    (tmp_path / "tokenizer_config.json").write_text("{broken")
    with pytest.raises(ModelLoadError, match=r"tokenizer_config\.json"):
        ChatTemplate.from_dir(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(
        json.dumps({"chat_template": [{"name": "rag", "template": "x"}]})
    )
    with pytest.raises(TemplateError, match=r"tokenizer_config\.json: .*no 'default'.*rag"):
        ChatTemplate.from_dir(tmp_path)
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"chat_template": "{% if %}"}))
    with pytest.raises(TemplateError, match=r"tokenizer_config\.json: line 1: syntax error"):
        ChatTemplate.from_dir(tmp_path)


def test_chatml_fallback(tmp_path: Path, caplog) -> None:
    (tmp_path / "tokenizer_config.json").write_text(json.dumps({"bos_token": BOS}))
    with caplog.at_level(logging.WARNING, logger="axllm"):
        template = ChatTemplate.from_dir(tmp_path)
    assert template.origin == FALLBACK_ORIGIN == "fallback: ChatML"
    assert any("ChatML" in r.getMessage() and str(tmp_path) in r.getMessage() for r in caplog.records)
    messages = [
        {"role": "system", "content": "Be brief."},
        {
            "role": "user",
            "content": [{"type": "text", "text": "Hi "}, {"type": "image"}, {"type": "text", "text": "😀"}],
        },
        {"role": "assistant", "content": None, "tool_calls": []},
    ]
    assert template.render(messages) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
        "<|im_start|>user\nHi 😀<|im_end|>\n"
        "<|im_start|>assistant\n<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert template.render(messages[:1], add_generation_prompt=False) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n"
    )


# --- real models ------------------------------------------------------------------------------

QWEN = "qwen2.5-coder-0.5b-instruct-q4_k_m"
SMOLLM = "smollm2-135m-instruct-q4_1"


REAL_CHATS = [
    CONVERSATIONS["single"],
    CONVERSATIONS["system"],
    CONVERSATIONS["multi_turn"],
    CONVERSATIONS["non_ascii"],
]


@pytest.mark.real_model
@pytest.mark.parametrize("name", [QWEN, SMOLLM])
def test_real_templates_match_transformers(real_dirs, name: str) -> None:
    directory = real_dirs[name]
    ours = ChatTemplate.from_dir(directory)
    assert ours.origin == str(directory / "tokenizer_config.json")
    assert "<|im_start|>" in ours.source
    theirs = transformers.AutoTokenizer.from_pretrained(str(directory))
    for chat in REAL_CHATS:
        for add in (True, False):
            assert ours.render(
                chat, add_generation_prompt=add, bos_token=theirs.bos_token, eos_token=theirs.eos_token
            ) == theirs.apply_chat_template(chat, tokenize=False, add_generation_prompt=add)


@pytest.mark.real_model
def test_real_qwen_tools_and_tool_calls(real_dirs) -> None:
    directory = real_dirs[QWEN]
    ours = ChatTemplate.from_dir(directory)
    theirs = transformers.AutoTokenizer.from_pretrained(str(directory))
    chat = [
        {"role": "user", "content": "Quel temps fait-il à Zürich ?"},
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {"type": "function", "function": {"name": "météo_actuelle", "arguments": {"ville": "Zürich"}}}
            ],
        },
        {"role": "tool", "content": '{"température": "21 °C"}'},
    ]
    rendered = ours.render(chat, tools=[WEATHER_TOOL])
    assert rendered == theirs.apply_chat_template(
        chat, tools=[WEATHER_TOOL], tokenize=False, add_generation_prompt=True
    )
    assert '"arguments": {"ville": "Zürich"}' in rendered
    assert '"description": "Donne la météo à Zürich' in rendered
