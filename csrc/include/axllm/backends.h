#pragma once
// Choosing the engine for a model format: the backend is made from its name, the kind of file it
// will load and the AXCL cards to use; which model runs on which card is the caller's choice
// (Backend::load_model's placement).
#include <memory>
#include <string>
#include <vector>

#include "axllm/backend.h"

namespace axllm {

// The backend `name` for files like `model_file` (its extension picks the format; the file is
// named in messages, not opened). "auto" picks by the extension: .hostmodel -> the host engine
// (host engine); .axmodel -> AXCL when libaxcl_rt loads and lists a card, else the native AX
// engine ("axcl" and "ax" force one of them). "host" forces the host engine; "host-nocompute" is
// the host engine with runs that do no arithmetic (for measuring runtime overhead).
// `devices` are AXCL card ordinals, one placement each in this order (empty: $AXLLM_DEVICES,
// else card 0); non-empty `devices` with a backend other than auto/axcl is std::invalid_argument.
// Throws ModelLoadError saying what was looked for when no backend can run the files,
// std::invalid_argument for an unknown name.
std::shared_ptr<Backend> select_backend(const std::string& name, const std::string& model_file,
                                        const std::vector<int>& devices = {});

}  // namespace axllm
