#!/usr/bin/env bash
# The project's static checks, run by .ci/run before the tests: ruff (lint and format), clang-format,
# the generated type stubs of axllm._core (regenerated and compared), mypy. Needs the `lint` extra and
# an installed axllm (for the stubs). `scripts/lint.sh --fix` rewrites files instead of checking.
set -euo pipefail
cd "$(dirname "$0")/.."
python_paths=(src tests bench scripts examples)
mapfile -t cpp_files < <(git ls-files 'csrc/*.cc' 'csrc/*.h' 'tests/*.cc' 'tests/*.h' 'tests/*.c')
if [[ "${1:-}" == "--fix" ]]; then
  python -m ruff check --fix "${python_paths[@]}"
  python -m ruff format "${python_paths[@]}"
  clang-format -i "${cpp_files[@]}"
  python scripts/check_stubs.py
else
  python -m ruff check "${python_paths[@]}"
  python -m ruff format --check "${python_paths[@]}"
  clang-format --dry-run --Werror "${cpp_files[@]}"
  python scripts/check_stubs.py --check
fi
python -m mypy
echo "lint: all checks passed"
