# CMake toolchain file: cross-compile axllm for 64-bit Arm Linux boards (AX650N / AX8850 /
# AX630C) with Debian's cross compiler, and run the built test programs under qemu-user.
#
#   apt-get install -y g++-aarch64-linux-gnu qemu-user-static
#   cmake -S . -B build/aarch64 -DCMAKE_TOOLCHAIN_FILE=cmake/aarch64-linux-gnu.cmake \
#         -DAXLLM_BUILD_TESTS=ON -DAXLLM_BUILD_PYTHON=OFF
#   cmake --build build/aarch64 -j2 && ctest --test-dir build/aarch64 --output-on-failure
#
# scripts/cross_test_aarch64.sh does all of this. Overridable on the command line:
#   AXLLM_CROSS_PREFIX    compiler prefix            (default aarch64-linux-gnu-)
#   AXLLM_CROSS_SYSROOT   target root (libc, libstdc++) (default /usr/aarch64-linux-gnu)
#   AXLLM_CROSS_EMULATOR  program that runs target binaries (default qemu-aarch64-static)

set(CMAKE_SYSTEM_NAME Linux)
set(CMAKE_SYSTEM_PROCESSOR aarch64)

set(AXLLM_CROSS_PREFIX "aarch64-linux-gnu-" CACHE STRING "Cross compiler prefix")
set(AXLLM_CROSS_SYSROOT "/usr/aarch64-linux-gnu" CACHE PATH "Target root of the cross toolchain")
set(AXLLM_CROSS_EMULATOR "qemu-aarch64-static" CACHE STRING "Runs aarch64 programs on the build host")

set(CMAKE_C_COMPILER "${AXLLM_CROSS_PREFIX}gcc")
set(CMAKE_CXX_COMPILER "${AXLLM_CROSS_PREFIX}g++")

# Debian's multiarch cross packages install the target's libraries under /usr/aarch64-linux-gnu
# and the compiler already knows where; search there (and only there) for target libraries and
# headers, while programs (python, pybind11's helpers) still come from the host.
set(CMAKE_FIND_ROOT_PATH "${AXLLM_CROSS_SYSROOT}")
set(CMAKE_FIND_ROOT_PATH_MODE_PROGRAM NEVER)
set(CMAKE_FIND_ROOT_PATH_MODE_LIBRARY ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_INCLUDE ONLY)
set(CMAKE_FIND_ROOT_PATH_MODE_PACKAGE ONLY)

# No binfmt_misc on build machines or CI: name the emulator, so that ctest (and try_run) start
# the test binaries through it. -L points qemu at the target's dynamic loader and shared libs.
set(CMAKE_CROSSCOMPILING_EMULATOR "${AXLLM_CROSS_EMULATOR};-L;${AXLLM_CROSS_SYSROOT}")
