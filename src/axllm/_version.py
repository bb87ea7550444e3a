"""The package version: pyproject.toml's [project] version is the only place it is written, and
the installed distribution's metadata carries it here."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("pyaxllm")
except PackageNotFoundError:  # imported from a source tree that was never installed
    __version__ = "0+unknown"
