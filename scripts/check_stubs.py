"""Generates the type stubs of the native module axllm._core with pybind11-stubgen, formatted by
ruff (both from the `lint` extra), into src/axllm (_core.pyi, or _core/ when the module has
submodules).

    python scripts/check_stubs.py           # (re)write the stubs in src/axllm
    python scripts/check_stubs.py --check   # exit 1, printing a diff, if the checked-in stubs differ

The stubs describe the module that `import axllm._core` finds, so install the package first
(pip install -e . or the wheel). Exit status: 0 up to date (or written), 1 stale or missing,
2 generation failed.
"""

from __future__ import annotations

import argparse
import difflib
import filecmp
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "src" / "axllm"
MODULE = "axllm._core"


def stub_files(package_dir: Path) -> dict[str, Path]:
    """The stub files of _core under ``package_dir``, keyed by their path relative to it."""
    found = [package_dir / "_core.pyi", *sorted((package_dir / "_core").rglob("*.pyi"))]
    return {p.relative_to(package_dir).as_posix(): p for p in found if p.is_file()}


def generate(out: Path) -> dict[str, Path]:
    """Runs pybind11-stubgen and ruff format into ``out``; returns the stubs made there."""
    gen = subprocess.run(
        [sys.executable, "-m", "pybind11_stubgen", MODULE, "--exit-code", "-o", str(out)],
        capture_output=True,
        text=True,
    )
    if gen.returncode != 0:
        raise RuntimeError(f"pybind11-stubgen {MODULE} failed:\n{gen.stdout}{gen.stderr}")
    stubs = stub_files(out / "axllm")
    if not stubs:
        raise RuntimeError(f"pybind11-stubgen wrote no stubs for {MODULE} under {out}")
    fmt = subprocess.run(
        [
            sys.executable,
            "-m",
            "ruff",
            "format",
            "--config",
            str(ROOT / "pyproject.toml"),
            *map(str, stubs.values()),
        ],
        capture_output=True,
        text=True,
    )
    if fmt.returncode != 0:
        raise RuntimeError(f"ruff format of the generated stubs failed:\n{fmt.stdout}{fmt.stderr}")
    return stubs


def differences(fresh: dict[str, Path], checked_in: dict[str, Path]) -> list[str]:
    """Unified diff lines from the checked-in stubs to the fresh ones (empty when equal)."""
    lines: list[str] = []
    for name in sorted(fresh.keys() | checked_in.keys()):
        old, new = checked_in.get(name), fresh.get(name)
        if old is not None and new is not None and filecmp.cmp(old, new, shallow=False):
            continue
        old_text = old.read_text().splitlines(keepends=True) if old else []
        new_text = new.read_text().splitlines(keepends=True) if new else []
        lines += difflib.unified_diff(
            old_text, new_text, f"src/axllm/{name} (checked in)", f"src/axllm/{name} (generated)"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the checked-in stubs instead of writing them"
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            fresh = generate(Path(tmp))
        except RuntimeError as e:
            print(e, file=sys.stderr)
            return 2
        checked_in = stub_files(PACKAGE)
        diff = differences(fresh, checked_in)
        if args.check:
            if diff:
                sys.stdout.writelines(diff)
                print(
                    f"\nthe stubs of {MODULE} are stale: run python scripts/check_stubs.py", file=sys.stderr
                )
                return 1
            return 0
        for name, path in checked_in.items():
            if name not in fresh:
                path.unlink()
        for name, path in fresh.items():
            (PACKAGE / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, PACKAGE / name)
        print(f"wrote {', '.join(f'src/axllm/{n}' for n in sorted(fresh))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
