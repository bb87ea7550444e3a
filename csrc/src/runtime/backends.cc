#include "axllm/backends.h"

#include <filesystem>
#include <stdexcept>

#include "axllm/errors.h"
#include "cpu/cpu_backend.h"
#include "util/thread_pool.h"

namespace axllm {

std::shared_ptr<Backend> select_backend(const std::string& name, const ModelFiles& files) {
  const std::string ext = std::filesystem::path(files.layers.at(0)).extension().string();
  if (name == "cpu-nocompute") return detail::make_cpu_backend(detail::default_thread_count(), false);
  if (name != "auto" && name != "cpu") {
    throw std::invalid_argument("backend '" + name + "' is not known (choose auto, cpu)");
  }
  if (ext == ".cpumodel") return cpu_backend();
  throw ModelLoadError(files.layers[0] + ": " + ext +
                       " models need an AXERA NPU backend (native AX engine or AXCL), and this "
                       "build has none yet; build the model for the CPU engine with "
                       "`python -m axllm.build` to run it here");
}

}  // namespace axllm
