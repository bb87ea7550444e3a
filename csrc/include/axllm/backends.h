#pragma once
// Choosing the engine for a model's files.
#include <memory>
#include <string>
#include <vector>

#include "axllm/engine.h"
#include "axllm/model_files.h"

namespace axllm {

// "auto" picks by the files: .cpumodel -> the CPU engine (software NPU); .axmodel -> AXCL when
// libaxcl_rt loads and lists a card, else the native AX engine ("axcl" and "ax" force one of
// them). "cpu" forces the CPU engine; "cpu-nocompute" is the CPU engine
// with runs that do no arithmetic (for measuring runtime overhead). Throws ModelLoadError saying
// what was looked for when no backend can run the files, std::invalid_argument for an unknown
// name.
std::shared_ptr<Backend> select_backend(const std::string& name, const ModelFiles& files);
// The same, on the AXCL cards `devices` (ordinals; empty: $AXLLM_DEVICES, else card 0). "axcl"
// forces AXCL; "auto" picks AXCL for .axmodel files when libaxcl_rt loads and lists a card, else
// the native AX engine. Non-empty `devices` with a backend other than auto/axcl is
// std::invalid_argument.
std::shared_ptr<Backend> select_backend(const std::string& name, const ModelFiles& files,
                                        const std::vector<int>& devices);

}  // namespace axllm
