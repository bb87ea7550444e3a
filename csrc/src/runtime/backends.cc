#include "axllm/backends.h"

#include <filesystem>
#include <stdexcept>

#include "axllm/errors.h"
#include "ax/ax_backend.h"
#include "cpu/cpu_backend.h"
#include "util/thread_pool.h"

namespace axllm {

std::shared_ptr<Backend> select_backend(const std::string& name, const ModelFiles& files) {
  const std::string ext = std::filesystem::path(files.layers.at(0)).extension().string();
  if (name == "cpu-nocompute") return detail::make_cpu_backend(detail::default_thread_count(), false);
  if (name != "auto" && name != "cpu" && name != "ax") {
    throw std::invalid_argument("backend '" + name + "' is not known (choose auto, cpu, ax)");
  }
  if (ext != ".axmodel") {
    if (name == "ax") {
      throw ModelLoadError(files.layers[0] + ": host builds (.cpumodel) run on the cpu backend, not on ax");
    }
    return cpu_backend();
  }
  if (name == "cpu") {
    throw ModelLoadError(files.layers[0] + ": " + ext + " models are compiled for the NPU; the cpu "
                         "backend runs host builds (.cpumodel) made by `python -m axllm.build`");
  }
  try {
    return detail::make_ax_backend();
  } catch (const EngineError& e) {
    throw ModelLoadError(files.layers[0] + ": " + ext + " models need an AXERA NPU backend, and none "
                         "could be opened: " + e.what() +
                         "\nTo run here, build the model for the CPU engine with `python -m axllm.build`.");
  }
}

}  // namespace axllm
