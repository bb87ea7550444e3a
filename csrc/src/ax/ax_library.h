#pragma once
// The native AXERA engine libraries (libax_sys.so, libax_engine.so), opened with dlopen and every
// needed symbol resolved at load: the only place that calls vendor symbols directly.
#include <string>
#include <vector>

#include "ax_engine_abi.h"

namespace axllm::detail {

struct AxApi {
  AX_SYS_Init_fn sys_init;
  AX_SYS_Deinit_fn sys_deinit;
  AX_SYS_MemAllocCached_fn mem_alloc_cached;
  AX_SYS_MemFree_fn mem_free;
  AX_SYS_MflushCache_fn mflush;
  AX_SYS_MinvalidateCache_fn minvalidate;
  AX_ENGINE_Init_fn engine_init;
  AX_ENGINE_Deinit_fn engine_deinit;
  AX_ENGINE_CreateHandle_fn create_handle;
  AX_ENGINE_DestroyHandle_fn destroy_handle;
  AX_ENGINE_CreateContextV2_fn create_context_v2;
  AX_ENGINE_GetGroupIOInfoCount_fn group_io_info_count;
  AX_ENGINE_GetGroupIOInfo_fn group_io_info;
  AX_ENGINE_RunGroupIOSync_fn run_group_io_sync;
};

// The process-wide API, opened and initialised (AX_SYS_Init, AX_ENGINE_Init) on first use.
// Search order: $AXLLM_AX_LIB_DIR, the dynamic loader's own search ($LD_LIBRARY_PATH, ...),
// /soc/lib (AX650/AX8850 boards), /opt/lib (AX620E/AX630C), /usr/lib. Throws EngineError naming
// the library and the places searched, or the missing symbol.
const AxApi& ax_api();
// Where ax_api() looks, in order (for messages).
std::vector<std::string> ax_search_paths();
// Throws EngineError{function, code} when `code` is not 0, with the code in hex.
void ax_check(int code, const char* function, const std::string& what);

}  // namespace axllm::detail
