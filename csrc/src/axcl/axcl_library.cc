#include "axcl/axcl_library.h"

#include <dirent.h>
#include <dlfcn.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <mutex>

#include "axllm/errors.h"
#include "axllm/log.h"

namespace axllm::detail {
namespace {

constexpr const char* kLibrary = "libaxcl_rt.so";
constexpr const char* kSystemDir = "/usr/lib/axcl";

std::atomic<void (*)()> g_exit_hook{nullptr};

// Versioned names (libaxcl_rt.so.1.2.3) in `dir`, newest-looking first.
std::vector<std::string> versioned_in(const std::string& dir) {
  std::vector<std::string> out;
  if (DIR* d = ::opendir(dir.c_str())) {
    const std::string prefix = std::string(kLibrary) + ".";
    while (const dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      if (name.rfind(prefix, 0) == 0) out.push_back(dir + "/" + name);
    }
    ::closedir(d);
  }
  std::sort(out.rbegin(), out.rend());
  return out;
}

void* open_library(std::string& tried) {
  std::vector<std::string> candidates;
  if (const char* dir = std::getenv("AXLLM_AXCL_LIB_DIR")) {
    candidates.push_back(std::string(dir) + "/" + kLibrary);
    for (auto& v : versioned_in(dir)) candidates.push_back(std::move(v));
  }
  candidates.push_back(kLibrary);
  candidates.push_back(std::string(kSystemDir) + "/" + kLibrary);
  for (auto& v : versioned_in(kSystemDir)) candidates.push_back(std::move(v));
  for (const auto& c : candidates) {
    if (void* h = ::dlopen(c.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
      log(LogLevel::kInfo, "axcl backend: loaded " + c);
      return h;
    }
    tried += "\n  " + c + ": " + ::dlerror();
  }
  return nullptr;
}

template <class F>
void resolve(void* lib, const char* symbol, F& out) {
  ::dlerror();
  void* p = ::dlsym(lib, symbol);
  if (!p) {
    throw EngineError("dlsym", 0,
                      std::string(kLibrary) + " has no symbol " + symbol +
                          " (an AXCL runtime too old, or not AXERA's library?)");
  }
  out = reinterpret_cast<F>(p);
}

void finalize_at_exit() {
  if (void (*hook)() = g_exit_hook.load()) hook();
  axcl_api().finalize();
}

AxclApi load_api() {
  std::string tried;
  void* lib = open_library(tried);
  if (!lib)
    throw EngineError("dlopen", 0,
                      std::string("AXCL runtime not found (") + kLibrary + "); tried:" + tried);
  AxclApi api{};
  resolve(lib, "axclInit", api.init);
  resolve(lib, "axclFinalize", api.finalize);
  resolve(lib, "axclrtGetDeviceList", api.get_device_list);
  resolve(lib, "axclrtSetDevice", api.set_device);
  resolve(lib, "axclrtResetDevice", api.reset_device);
  resolve(lib, "axclrtCreateContext", api.create_context);
  resolve(lib, "axclrtDestroyContext", api.destroy_context);
  resolve(lib, "axclrtSetCurrentContext", api.set_current_context);
  resolve(lib, "axclrtGetCurrentContext", api.get_current_context);
  resolve(lib, "axclrtMalloc", api.malloc);
  resolve(lib, "axclrtFree", api.free);
  resolve(lib, "axclrtMemcpy", api.memcpy);
  resolve(lib, "axclrtMemset", api.memset);
  resolve(lib, "axclrtEngineInit", api.engine_init);
  resolve(lib, "axclrtEngineFinalize", api.engine_finalize);
  resolve(lib, "axclrtEngineLoadFromFile", api.load_from_file);
  resolve(lib, "axclrtEngineLoadFromMem", api.load_from_mem);
  resolve(lib, "axclrtEngineUnload", api.unload);
  resolve(lib, "axclrtEngineCreateContext", api.engine_create_context);
  resolve(lib, "axclrtEngineGetIOInfo", api.get_io_info);
  resolve(lib, "axclrtEngineDestroyIOInfo", api.destroy_io_info);
  resolve(lib, "axclrtEngineGetShapeGroupsCount", api.shape_groups_count);
  resolve(lib, "axclrtEngineGetNumInputs", api.num_inputs);
  resolve(lib, "axclrtEngineGetNumOutputs", api.num_outputs);
  resolve(lib, "axclrtEngineGetInputSizeByIndex", api.input_size);
  resolve(lib, "axclrtEngineGetOutputSizeByIndex", api.output_size);
  resolve(lib, "axclrtEngineGetInputDims", api.input_dims);
  resolve(lib, "axclrtEngineGetOutputDims", api.output_dims);
  resolve(lib, "axclrtEngineGetInputNameByIndex", api.input_name);
  resolve(lib, "axclrtEngineGetOutputNameByIndex", api.output_name);
  resolve(lib, "axclrtEngineGetInputDataType", api.input_dtype);
  resolve(lib, "axclrtEngineGetOutputDataType", api.output_dtype);
  resolve(lib, "axclrtEngineCreateIO", api.create_io);
  resolve(lib, "axclrtEngineDestroyIO", api.destroy_io);
  resolve(lib, "axclrtEngineSetInputBufferByIndex", api.set_input);
  resolve(lib, "axclrtEngineSetOutputBufferByIndex", api.set_output);
  resolve(lib, "axclrtEngineExecute", api.execute);
  axcl_check(api.init(nullptr), "axclInit", "initialising the AXCL runtime");
  auto list = std::make_unique<axclrtDeviceList>();
  *list = axclrtDeviceList{};
  const int rc = api.get_device_list(list.get());
  if (rc != 0) {
    api.finalize();
    axcl_check(rc, "axclrtGetDeviceList", "listing AXCL cards");
  }
  for (uint32_t i = 0; i < std::min<uint32_t>(list->num, AXCL_MAX_DEVICE_COUNT); ++i) {
    api.devices.push_back(list->devices[i]);
  }
  return api;
}

}  // namespace

std::vector<std::string> axcl_search_paths() {
  std::vector<std::string> out;
  if (const char* dir = std::getenv("AXLLM_AXCL_LIB_DIR")) out.push_back(dir);
  out.push_back("(dynamic loader search path)");
  out.push_back(kSystemDir);
  return out;
}

void axcl_check(int code, const char* function, const std::string& what) {
  if (code == 0) return;
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08X", static_cast<unsigned>(code));
  throw EngineError(function, code,
                    std::string(function) + " failed with " + hex + " (" + what + ")");
}

void axcl_at_exit(void (*hook)()) { g_exit_hook.store(hook); }

const AxclApi& axcl_api() {
  // Lock-free once loaded: the SIGTERM handler frees device memory through this table.
  static std::atomic<const AxclApi*> loaded{nullptr};
  if (const AxclApi* api = loaded.load(std::memory_order_acquire)) return *api;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  if (const AxclApi* api = loaded.load(std::memory_order_acquire)) return *api;
  static AxclApi api = load_api();
  loaded.store(&api, std::memory_order_release);
  std::atexit(finalize_at_exit);
  return api;
}

}  // namespace axllm::detail
