#pragma once
// The AXCL runtime library (libaxcl_rt.so, the host side of AX650 PCIe/M.2 cards), opened with
// dlopen and every needed symbol resolved at load: the only place that names AXCL symbols.
#include <string>
#include <vector>

#include "axcl_rt_abi.h"

namespace axllm::detail {

struct AxclApi {
  axclInit_fn init;
  axclFinalize_fn finalize;
  axclrtGetDeviceList_fn get_device_list;
  axclrtSetDevice_fn set_device;
  axclrtResetDevice_fn reset_device;
  axclrtCreateContext_fn create_context;
  axclrtDestroyContext_fn destroy_context;
  axclrtSetCurrentContext_fn set_current_context;
  axclrtGetCurrentContext_fn get_current_context;
  axclrtMalloc_fn malloc;
  axclrtFree_fn free;
  axclrtMemcpy_fn memcpy;
  axclrtMemset_fn memset;
  axclrtEngineInit_fn engine_init;
  axclrtEngineFinalize_fn engine_finalize;
  axclrtEngineLoadFromFile_fn load_from_file;
  axclrtEngineLoadFromMem_fn load_from_mem;
  axclrtEngineUnload_fn unload;
  axclrtEngineCreateContext_fn engine_create_context;
  axclrtEngineGetIOInfo_fn get_io_info;
  axclrtEngineDestroyIOInfo_fn destroy_io_info;
  axclrtEngineGetShapeGroupsCount_fn shape_groups_count;
  axclrtEngineGetNumIO_fn num_inputs;
  axclrtEngineGetNumIO_fn num_outputs;
  axclrtEngineGetSizeByIndex_fn input_size;
  axclrtEngineGetSizeByIndex_fn output_size;
  axclrtEngineGetDims_fn input_dims;
  axclrtEngineGetDims_fn output_dims;
  axclrtEngineGetNameByIndex_fn input_name;
  axclrtEngineGetNameByIndex_fn output_name;
  axclrtEngineGetDataType_fn input_dtype;
  axclrtEngineGetDataType_fn output_dtype;
  axclrtEngineCreateIO_fn create_io;
  axclrtEngineDestroyIO_fn destroy_io;
  axclrtEngineSetBufferByIndex_fn set_input;
  axclrtEngineSetBufferByIndex_fn set_output;
  axclrtEngineExecute_fn execute;
  // The ids axclrtGetDeviceList reported at load (card ordinal -> device id).
  std::vector<int32_t> devices;
};

// The process-wide API, opened, initialised (axclInit, once per process) and its cards listed on
// first use. Search order: $AXLLM_AXCL_LIB_DIR, the dynamic loader's own search
// ($LD_LIBRARY_PATH, ...), /usr/lib/axcl (also a versioned libaxcl_rt.so.* there). Throws
// EngineError naming the places searched, or the missing symbol. axclFinalize runs at exit, after
// axcl_at_exit hooks (which free device memory).
const AxclApi& axcl_api();
// Where axcl_api() looks, in order (for messages).
std::vector<std::string> axcl_search_paths();
// Throws EngineError{function, code} when `code` is not 0, with the code in hex.
void axcl_check(int code, const char* function, const std::string& what);
// Registers `hook` to run at process exit before axclFinalize (once; not from signal handlers).
void axcl_at_exit(void (*hook)());

}  // namespace axllm::detail
