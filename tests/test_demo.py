"""``axllm.demo_model()``: one demo build in the cache, named by a hash of its resolved build
options, superseded builds removed, ``AXLLM_DEMO_MODEL`` honoured, ``python -m axllm.zoo path demo``.
The builder and the fetch are replaced by fakes that record their calls (the real build runs in
tests/test_readme.py's real-model test and test_chat_cli's --demo test)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import axllm
from axllm import demo, zoo
from axllm.build import BuildOptions


@pytest.fixture
def fake_build(tmp_path, monkeypatch):
    """AXLLM_CACHE in tmp_path, a fake GGUF fetch and a builder that writes a minimal complete
    build; returns the list of (gguf, output, options) the builder was called with."""
    monkeypatch.setenv("AXLLM_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv(demo.ENV_VAR, raising=False)
    gguf = tmp_path / "model.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setattr(zoo, "fetch_gguf", lambda name: gguf)
    calls: list[tuple[Path, Path, BuildOptions]] = []

    def build(src, out, options, progress=None):
        calls.append((Path(src), Path(out), options))
        Path(out).mkdir(parents=True, exist_ok=True)
        (Path(out) / "config.json").write_text("{}")
        (Path(out) / "qwen2_post.hostmodel").write_bytes(b"x" * 1000)
        if progress:
            progress("layer 1/1")
        return Path(out)

    monkeypatch.setattr(demo, "build", build)
    return calls


def test_builds_once_and_reports_where(fake_build, tmp_path, capsys):
    path = axllm.demo_model()
    builds = tmp_path / "cache" / "builds"
    assert path == builds / demo.demo_build_name()
    assert path.name.startswith(f"{demo.DEMO_MODEL}-demo-")
    assert len(fake_build) == 1 and fake_build[0][2] is demo.BUILD_OPTIONS
    err = capsys.readouterr().err
    assert f"demo model built: 0.00 GB in {path}" in err
    assert axllm.demo_model() == path
    assert len(fake_build) == 1, "a complete build is reused"
    assert capsys.readouterr().err == "", "the note is printed once, when the build is made"
    assert [p.name for p in builds.iterdir() if p.is_dir()] == [path.name], "no temporary directory left"


def test_quiet_prints_nothing(fake_build, capsys):
    axllm.demo_model(quiet=True)
    assert capsys.readouterr().err == ""


def test_name_follows_the_resolved_options():
    base = demo.demo_build_name()
    assert demo.demo_build_name(BuildOptions(**vars(demo.BUILD_OPTIONS))) == base
    assert (
        demo.demo_build_name(BuildOptions(prefill_len=128, kv_cache_len=1023, last_kv_cache_len=[512]))
        != base
    )
    assert demo.demo_build_name(BuildOptions(prefill_len=64, kv_cache_len=1023)) != base
    with pytest.raises(ValueError, match="prefill_len"):
        demo.demo_build_name(BuildOptions(prefill_len=0))


def test_the_demo_uses_the_builders_default_history_groups():
    assert demo.BUILD_OPTIONS.last_kv_cache_len == BuildOptions().last_kv_cache_len


def test_a_new_build_supersedes_older_demo_builds(fake_build, tmp_path, capsys):
    builds = tmp_path / "cache" / "builds"
    older = [
        builds / f"{demo.DEMO_MODEL}-demo-0123456789",  # made with other options
        builds / f"{demo.DEMO_MODEL}-bf16-ctx",  # the fixed name of older versions
        builds / f"{demo.DEMO_MODEL}-bf16",  # the examples' and benches' own build of older versions
        builds / f".{demo.DEMO_MODEL}-demo-0123456789.abcd",  # an interrupted build
    ]
    others = [builds / "my-own-build", builds / f"{demo.DEMO_MODEL}-f16-p128-c1023-h128"]
    for d in older + others:
        d.mkdir(parents=True)
        (d / "config.json").write_text("{}")
    path = axllm.demo_model()
    assert sorted(p.name for p in builds.iterdir() if p.is_dir()) == sorted(
        [path.name] + [d.name for d in others]
    )
    err = capsys.readouterr().err
    for d in older:
        assert f"removed the superseded demo build {d}" in err


def test_an_incomplete_build_is_made_again(fake_build, tmp_path):
    path = tmp_path / "cache" / "builds" / demo.demo_build_name()
    path.mkdir(parents=True)
    (path / "config.json").write_text("{}")  # no layer files: an interrupted copy
    assert axllm.demo_model() == path
    assert len(fake_build) == 1 and (path / "qwen2_post.hostmodel").is_file()


def test_environment_variable_replaces_the_demo(fake_build, tmp_path, monkeypatch):
    mine = tmp_path / "mine"
    mine.mkdir()
    monkeypatch.setenv("AXLLM_DEMO_MODEL", str(mine))
    assert axllm.demo_model() == mine
    assert fake_build == []
    monkeypatch.setenv("AXLLM_DEMO_MODEL", str(tmp_path / "missing"))
    with pytest.raises(axllm.ModelLoadError, match="AXLLM_DEMO_MODEL=.*missing.*not a directory"):
        axllm.demo_model()


def _zoo_path(name: str, env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "axllm.zoo", "path", name],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_zoo_path_demo_prints_the_directory(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    env = {**os.environ, "AXLLM_DEMO_MODEL": str(mine)}
    r = _zoo_path("demo", env)
    assert (r.returncode, r.stdout) == (0, f"{mine}\n"), r.stderr
    env["AXLLM_DEMO_MODEL"] = str(tmp_path / "missing")
    r = _zoo_path("demo", env)
    assert r.returncode == 1 and r.stdout == "" and "not a directory" in r.stderr
    r = _zoo_path("nothing", dict(os.environ))
    assert r.returncode == 2 and "invalid choice" in r.stderr
