#include "ax/ax_library.h"

#include <dlfcn.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "axllm/errors.h"
#include "axllm/log.h"

namespace axllm::detail {
namespace {

void* open_library(const char* name, std::string& tried) {
  std::vector<std::string> candidates;
  if (const char* dir = std::getenv("AXLLM_AX_LIB_DIR"))
    candidates.push_back(std::string(dir) + "/" + name);
  candidates.push_back(name);
  for (const char* dir : {"/soc/lib", "/opt/lib", "/usr/lib"})
    candidates.push_back(std::string(dir) + "/" + name);
  for (const auto& c : candidates) {
    if (void* h = ::dlopen(c.c_str(), RTLD_NOW | RTLD_GLOBAL)) {
      log(LogLevel::kInfo, "ax backend: loaded " + c);
      return h;
    }
    tried += "\n  " + c + ": " + ::dlerror();
  }
  return nullptr;
}

template <class F>
void resolve(void* lib, const char* lib_name, const char* symbol, F& out) {
  ::dlerror();
  void* p = ::dlsym(lib, symbol);
  if (!p) {
    throw EngineError("dlsym", 0,
                      std::string(lib_name) + " has no symbol " + symbol +
                          " (an SDK too old or not AXERA's library?)");
  }
  out = reinterpret_cast<F>(p);
}

AxApi load_api() {
  std::string tried;
  void* sys = open_library("libax_sys.so", tried);
  void* engine = sys ? open_library("libax_engine.so", tried) : nullptr;
  if (!sys || !engine) {
    throw EngineError("dlopen", 0,
                      std::string("AXERA NPU libraries not found (libax_sys.so, ") +
                          "libax_engine.so); tried:" + tried);
  }
  AxApi api{};
  resolve(sys, "libax_sys.so", "AX_SYS_Init", api.sys_init);
  resolve(sys, "libax_sys.so", "AX_SYS_Deinit", api.sys_deinit);
  resolve(sys, "libax_sys.so", "AX_SYS_MemAllocCached", api.mem_alloc_cached);
  resolve(sys, "libax_sys.so", "AX_SYS_MemFree", api.mem_free);
  resolve(sys, "libax_sys.so", "AX_SYS_MflushCache", api.mflush);
  resolve(sys, "libax_sys.so", "AX_SYS_MinvalidateCache", api.minvalidate);
  resolve(engine, "libax_engine.so", "AX_ENGINE_Init", api.engine_init);
  resolve(engine, "libax_engine.so", "AX_ENGINE_Deinit", api.engine_deinit);
  resolve(engine, "libax_engine.so", "AX_ENGINE_CreateHandle", api.create_handle);
  resolve(engine, "libax_engine.so", "AX_ENGINE_DestroyHandle", api.destroy_handle);
  resolve(engine, "libax_engine.so", "AX_ENGINE_CreateContextV2", api.create_context_v2);
  resolve(engine, "libax_engine.so", "AX_ENGINE_GetGroupIOInfoCount", api.group_io_info_count);
  resolve(engine, "libax_engine.so", "AX_ENGINE_GetGroupIOInfo", api.group_io_info);
  resolve(engine, "libax_engine.so", "AX_ENGINE_RunGroupIOSync", api.run_group_io_sync);
  ax_check(api.sys_init(), "AX_SYS_Init", "initialising the system library");
  AX_ENGINE_NPU_ATTR_T attr{};
  attr.eHardMode = AX_ENGINE_VIRTUAL_NPU_DISABLE;
  ax_check(api.engine_init(&attr), "AX_ENGINE_Init", "initialising the NPU engine");
  return api;
}

}  // namespace

std::vector<std::string> ax_search_paths() {
  std::vector<std::string> out;
  if (const char* dir = std::getenv("AXLLM_AX_LIB_DIR")) out.push_back(dir);
  out.push_back("(dynamic loader search path)");
  for (const char* dir : {"/soc/lib", "/opt/lib", "/usr/lib"}) out.push_back(dir);
  return out;
}

void ax_check(int code, const char* function, const std::string& what) {
  if (code == 0) return;
  char hex[16];
  std::snprintf(hex, sizeof hex, "0x%08X", static_cast<unsigned>(code));
  throw EngineError(function, code,
                    std::string(function) + " failed with " + hex + " (" + what + ")");
}

const AxApi& ax_api() {
  // Lock-free once loaded: the SIGTERM handler frees CMM through this table, possibly on a
  // thread interrupted inside it.
  static std::atomic<const AxApi*> loaded{nullptr};
  if (const AxApi* api = loaded.load(std::memory_order_acquire)) return *api;
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  if (const AxApi* api = loaded.load(std::memory_order_acquire)) return *api;
  static AxApi api = load_api();
  loaded.store(&api, std::memory_order_release);
  return api;
}

}  // namespace axllm::detail
