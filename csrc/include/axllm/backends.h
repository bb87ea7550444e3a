#pragma once
// Choosing the engine for a model's files.
#include <memory>
#include <string>

#include "axllm/engine.h"
#include "axllm/model_files.h"

namespace axllm {

// "auto" picks by the files: .cpumodel -> the CPU engine (software NPU); .axmodel -> an NPU
// backend (none is built yet). "cpu" forces the CPU engine; "cpu-nocompute" is the CPU engine
// with runs that do no arithmetic (for measuring runtime overhead). Throws ModelLoadError saying
// what was looked for when no backend can run the files, std::invalid_argument for an unknown
// name.
std::shared_ptr<Backend> select_backend(const std::string& name, const ModelFiles& files);

}  // namespace axllm
