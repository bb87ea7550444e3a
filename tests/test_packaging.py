"""What the installed package declares about itself: one version (pyproject.toml's, as the
distribution metadata carries it) and the py.typed marker for type checkers."""

from __future__ import annotations

import re
from importlib import metadata, resources
from pathlib import Path

import axllm

PYPROJECT = Path(__file__).resolve().parents[1] / "pyproject.toml"


def pyproject_version() -> str:
    project = re.search(r"^\[project\]\n(.*?)(?=^\[)", PYPROJECT.read_text(), re.M | re.S)
    assert project, f"no [project] table in {PYPROJECT}"
    found = re.search(r'^version = "([^"]+)"$', project.group(1), re.M)
    assert found, f"no version in the [project] table of {PYPROJECT}"
    return found.group(1)


def test_version_is_the_installed_distributions_and_pyprojects():
    assert axllm.__version__ == metadata.version("pyaxllm") == pyproject_version()


def test_package_is_marked_typed():
    assert resources.files("axllm").joinpath("py.typed").is_file()
