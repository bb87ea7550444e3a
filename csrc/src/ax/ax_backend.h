#pragma once
// The native AXERA NPU backend (AX650N/AX650A/AX8850, AX630C/AX620E boards): models through
// libax_engine, buffers in cached CMM (flushed before each run for inputs, invalidated after it
// for outputs), every CMM block freed exactly once: at close, at exit, or on SIGTERM.
#include <memory>

#include "axllm/backend.h"

namespace axllm::detail {

// Opens the vendor libraries on first use; throws EngineError when they cannot be found.
std::shared_ptr<Backend> make_ax_backend();

}  // namespace axllm::detail
