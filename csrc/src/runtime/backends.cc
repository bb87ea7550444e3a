#include "axllm/backends.h"

#include <filesystem>
#include <stdexcept>

#include "ax/ax_backend.h"
#include "axcl/axcl_backend.h"
#include "axllm/errors.h"
#include "host/host_backend.h"
#include "util/thread_pool.h"

namespace axllm {

std::shared_ptr<Backend> select_backend(const std::string& name, const std::string& model_file,
                                        const std::vector<int>& devices) {
  const std::string ext = std::filesystem::path(model_file).extension().string();
  if (name != "auto" && name != "host" && name != "ax" && name != "axcl" &&
      name != "host-nocompute") {
    throw std::invalid_argument("backend '" + name +
                                "' is not known (choose auto, host, ax, axcl)");
  }
  if (!devices.empty() && name != "auto" && name != "axcl") {
    throw std::invalid_argument("devices= selects AXCL cards; backend '" + name + "' has none");
  }
  if (name == "host-nocompute")
    return detail::make_host_backend(detail::default_thread_count(), false);
  if (ext != ".axmodel") {
    if (name == "ax" || name == "axcl" || !devices.empty()) {
      throw ModelLoadError(
          model_file +
          ": host builds (.hostmodel) run on the host engine (backend 'host'), not on " +
          (name == "auto" ? std::string("axcl") : name));
    }
    return host_backend();
  }
  if (name == "host") {
    throw ModelLoadError(model_file + ": " + ext +
                         " models are compiled for the NPU; the host "
                         "backend runs host builds (.hostmodel) made by `python -m axllm.build`");
  }
  std::string why;
  if (name == "axcl" || name == "auto") {
    try {
      return detail::make_axcl_backend(devices);
    } catch (const EngineError& e) {
      why += std::string("\n  axcl (PCIe/M.2 cards): ") + e.what();
    }
  }
  if (name == "ax" || (name == "auto" && devices.empty())) {
    try {
      return detail::make_ax_backend();
    } catch (const EngineError& e) {
      why += std::string("\n  ax (native board): ") + e.what();
    }
  }
  throw ModelLoadError(
      model_file + ": " + ext +
      " models need an AXERA NPU backend, and none "
      "could be opened:" +
      why + "\nTo run here, build the model for the host engine with `python -m axllm.build`.");
}

}  // namespace axllm
