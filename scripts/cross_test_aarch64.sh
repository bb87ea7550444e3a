#!/usr/bin/env bash
# Cross-compiles the C++ core and its unit tests for aarch64 (the boards' architecture) and runs
# them with ctest under qemu-user. Installs the cross compiler and qemu with apt if missing.
#
#   scripts/cross_test_aarch64.sh            # from anywhere inside the repository
#
# Environment:
#   AXLLM_CROSS_BUILD_DIR  build directory       (default build/aarch64 in the repository)
#   AXLLM_CROSS_JOBS       parallel build jobs   (default 2)
#   AXLLM_CROSS_NO_INSTALL set to 1 to never call apt-get (fail if the tools are missing)
#   AXLLM_CROSS_TIMEOUT    per-test ctest timeout in seconds (default 600)
# Exit status: 0 all tests passed; 77 the toolchain or qemu is missing and cannot be installed here
# (no apt-get, not root, apt-get failed, AXLLM_CROSS_NO_INSTALL=1); 1 configure, build or a test
# failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${AXLLM_CROSS_BUILD_DIR:-$ROOT/build/aarch64}"
JOBS="${AXLLM_CROSS_JOBS:-2}"
TIMEOUT="${AXLLM_CROSS_TIMEOUT:-600}"

need=()
command -v aarch64-linux-gnu-g++ >/dev/null 2>&1 || need+=(g++-aarch64-linux-gnu libc6-dev-arm64-cross)
command -v qemu-aarch64-static >/dev/null 2>&1 || need+=(qemu-user-static)
if ((${#need[@]})); then
  if [[ "${AXLLM_CROSS_NO_INSTALL:-0}" == 1 ]]; then
    echo "cross_test_aarch64: missing ${need[*]} and AXLLM_CROSS_NO_INSTALL=1" >&2
    exit 77
  fi
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "cross_test_aarch64: missing ${need[*]} and no apt-get to install them" >&2
    exit 77
  fi
  SUDO=()
  if [[ "$(id -u)" != 0 ]]; then
    if command -v sudo >/dev/null 2>&1; then SUDO=(sudo -n); else
      echo "cross_test_aarch64: missing ${need[*]}; need root (or sudo) to apt-get install" >&2
      exit 77
    fi
  fi
  echo "cross_test_aarch64: installing ${need[*]}"
  if ! { "${SUDO[@]}" apt-get update -qq &&
         "${SUDO[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
           --no-install-recommends "${need[@]}"; }; then
    echo "cross_test_aarch64: apt-get could not install ${need[*]}" >&2
    exit 77
  fi
fi

for tool in cmake ctest aarch64-linux-gnu-g++ qemu-aarch64-static; do
  command -v "$tool" >/dev/null 2>&1 || { echo "cross_test_aarch64: $tool not found" >&2; exit 77; }
done

fail() { echo "cross_test_aarch64: $1 failed" >&2; exit 1; }
cd "$ROOT"
cmake -S . -B "$BUILD" \
  -DCMAKE_TOOLCHAIN_FILE="$ROOT/cmake/aarch64-linux-gnu.cmake" \
  -DAXLLM_BUILD_TESTS=ON -DAXLLM_BUILD_PYTHON=OFF -DAXLLM_WERROR=ON || fail configure
cmake --build "$BUILD" -j"$JOBS" || fail build
ctest --test-dir "$BUILD" --output-on-failure --timeout "$TIMEOUT" || fail ctest
