"""The typed seam between Python and C++: every place that takes generation options accepts the
same names (the C++ GenerationConfig's fields), and the package's modules import without cycles."""

from __future__ import annotations

import argparse
import ast
import inspect
from pathlib import Path

import pytest

import axllm
from axllm import chat
from axllm.generation import GenerationOptions
from axllm.serve import params

FIELDS = (
    "max_new_tokens",
    "temperature",
    "top_k",
    "top_p",
    "min_p",
    "repetition_penalty",
    "presence_penalty",
    "frequency_penalty",
    "seed",
    "stop",
    "overflow",
)


def test_every_front_accepts_the_fields_of_the_cpp_config():
    cpp = tuple(axllm.GenerationConfig.fields)
    assert cpp == FIELDS  # a field added in C++ must be added to this list (and the docs) too
    assert tuple(axllm.GenerationConfig().to_dict()) == cpp
    assert tuple(GenerationOptions.__annotations__) == cpp, "the keyword arguments of generate/chat"
    assert chat.OPTIONS == cpp, "the REPL's /set and command line"
    assert {field for field in params.CONFIG_FIELDS.values()} == set(cpp), "the server's request fields"
    assert {name for name, field in params.CONFIG_FIELDS.items() if name == field} == set(cpp)
    for name in cpp:
        assert name in params.CHAT_FIELDS and name in params.COMPLETION_FIELDS
    parser_flags = set()
    original = argparse.ArgumentParser.add_argument

    def spy(self, *names, **kwargs):
        parser_flags.update(names)
        return original(self, *names, **kwargs)

    argparse.ArgumentParser.add_argument = spy
    try:
        chat.parse_args(["model"])
    finally:
        argparse.ArgumentParser.add_argument = original
    assert {"--" + name.replace("_", "-") for name in cpp} <= parser_flags


def test_generate_and_chat_take_config_and_the_options_keywords():
    from axllm.llm import LLM

    for method in (LLM.generate, LLM.chat, LLM.prompt_ids, LLM.chat_prompt):
        sig = inspect.signature(method)
        assert "config" in sig.parameters and sig.parameters["options"].kind is inspect.Parameter.VAR_KEYWORD


@pytest.mark.parametrize(
    "options,error,match",
    [
        (dict(temperature=-1), ValueError, "^temperature must be finite and >= 0"),
        (dict(top_p=0), ValueError, r"^top_p must be in \(0, 1\]"),
        (dict(max_new_tokens=0), ValueError, "^max_new_tokens must be >= 1"),
        (dict(stop=[""]), ValueError, "stop strings must not be empty"),
        (dict(stop=["x"] * 17), ValueError, "at most 16"),
        (dict(overflow="sideways"), ValueError, "^overflow must be one of"),
        (dict(seed=-1), ValueError, r"^seed must be in \[0, 2\*\*64\)"),
        (dict(top_k=True), TypeError, "^top_k must be an int"),
        (dict(temperature="hot"), TypeError, "^temperature must be a number"),
        (dict(stop=[1]), TypeError, "^stop must be a str or a sequence of str"),
        (dict(stop="\ud800"), ValueError, "lone surrogate"),
        (dict(tempreature=1.0), TypeError, "unknown generation option 'tempreature'"),
    ],
)
def test_one_set_of_rules(options, error, match):
    with pytest.raises(error, match=match):
        axllm.GenerationConfig(**options)
    config = axllm.GenerationConfig()
    name, value = next(iter(options.items()))
    if name in FIELDS:
        with pytest.raises(error, match=match):
            setattr(config, name, value)
        assert config == axllm.GenerationConfig(), "a rejected assignment changes nothing"


def test_config_values_round_trip():
    c = axllm.GenerationConfig(
        temperature=0.8, top_k=5, seed=2**64 - 1, stop="\n", max_new_tokens=2**40, overflow="truncate_left"
    )
    assert (c.temperature, c.top_k, c.seed, c.stop, c.max_new_tokens, c.overflow) == (
        0.8,
        5,
        2**64 - 1,
        ["\n"],
        2**40,
        "truncate_left",
    )
    assert c.replace(temperature=None).temperature is None and c.temperature == 0.8
    assert axllm.GenerationConfig(**c.to_dict()) == c
    import copy
    import pickle

    assert pickle.loads(pickle.dumps(c)) == c and copy.deepcopy(c) == c
    assert "temperature=0.8" in repr(c) and "top_p" not in repr(c)


def _imports(path: Path, package_root: Path) -> set[str]:
    """The axllm modules ``path`` imports at module level (not inside functions or TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    out = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in (
            ast.walk(node)
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))
            else ()
        ):
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("axllm"):
                out.add(sub.module)
                out.update(f"{sub.module}.{a.name}" for a in sub.names)
            elif isinstance(sub, ast.Import):
                out.update(a.name for a in sub.names if a.name.startswith("axllm"))
    return out


def test_the_package_has_no_import_cycles():
    root = Path(axllm.__file__).parent
    modules = {}
    for path in root.rglob("*.py"):
        rel = path.relative_to(root.parent).with_suffix("")
        name = ".".join(rel.parts[:-1] if rel.name == "__init__" else rel.parts)
        modules[name] = path
    graph = {
        name: {m for m in _imports(path, root) if m in modules and m != name}
        for name, path in modules.items()
    }
    # A package's __init__ importing its own submodules is the package's own business.
    for name in graph:
        graph[name] = {m for m in graph[name] if not (name == m.rsplit(".", 1)[0] or m == "axllm")}
    state: dict[str, int] = {}
    cycle: list[str] = []

    def visit(node: str, trail: list[str]) -> bool:
        state[node] = 1
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle.extend(trail[trail.index(nxt) :] + [node, nxt] if nxt in trail else [node, nxt])
                return True
            if nxt not in state and visit(nxt, trail + [node]):
                return True
        state[node] = 2
        return False

    for name in sorted(graph):
        if name not in state and visit(name, []):
            break
    assert not cycle, f"import cycle: {' -> '.join(cycle)}"
