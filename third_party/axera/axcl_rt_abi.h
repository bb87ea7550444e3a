/* axllm's own declarations of the subset of AXERA's AXCL runtime ABI (libaxcl_rt, the host side
 * of the AX650 PCIe/M.2 cards) that it uses, written from the documented types, enums and
 * prototypes of axcl_rt.h / axcl_rt_engine.h. Nothing here is copied from the SDK headers.
 *
 * Every handle is opaque (void* or a 64-bit id); the only structs crossing the ABI are
 * axclrtDeviceList and axclrtEngineIODims, both plain arrays of 32-bit integers. Prototypes are
 * function-pointer typedefs: axllm resolves each symbol with dlsym at load. */
#ifndef AXLLM_AXCL_RT_ABI_H
#define AXLLM_AXCL_RT_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef int32_t axclError;
typedef void* axclrtContext;
typedef void* axclrtEngineIOInfo;
typedef void* axclrtEngineIO;

#define AXCL_MAX_DEVICE_COUNT 256
typedef struct {
  uint32_t num;
  int32_t devices[AXCL_MAX_DEVICE_COUNT];
} axclrtDeviceList;

#define AXCLRT_ENGINE_MAX_DIM_CNT 32
typedef struct {
  int32_t dimCount;
  int32_t dims[AXCLRT_ENGINE_MAX_DIM_CNT];
} axclrtEngineIODims;

typedef enum {
  AXCL_MEM_MALLOC_HUGE_FIRST = 0,
  AXCL_MEM_MALLOC_HUGE_ONLY = 1,
  AXCL_MEM_MALLOC_NORMAL_ONLY = 2,
} axclrtMemMallocPolicy;

typedef enum {
  AXCL_MEMCPY_HOST_TO_HOST = 0,
  AXCL_MEMCPY_HOST_TO_DEVICE = 1,
  AXCL_MEMCPY_DEVICE_TO_HOST = 2,
  AXCL_MEMCPY_DEVICE_TO_DEVICE = 3,
  AXCL_MEMCPY_HOST_PHY_TO_DEVICE = 4,
  AXCL_MEMCPY_DEVICE_TO_HOST_PHY = 5,
} axclrtMemcpyKind;

typedef enum {
  AXCL_VNPU_DISABLE = 0,
  AXCL_VNPU_ENABLE = 1,
  AXCL_VNPU_BIG_LITTLE = 2,
  AXCL_VNPU_LITTLE_BIG = 3,
} axclrtEngineVNpuKind;

typedef enum {
  AXCL_DATA_TYPE_NONE = 0,
  AXCL_DATA_TYPE_INT4 = 1,
  AXCL_DATA_TYPE_UINT4 = 2,
  AXCL_DATA_TYPE_INT8 = 3,
  AXCL_DATA_TYPE_UINT8 = 4,
  AXCL_DATA_TYPE_INT16 = 5,
  AXCL_DATA_TYPE_UINT16 = 6,
  AXCL_DATA_TYPE_INT32 = 7,
  AXCL_DATA_TYPE_UINT32 = 8,
  AXCL_DATA_TYPE_INT64 = 9,
  AXCL_DATA_TYPE_UINT64 = 10,
  AXCL_DATA_TYPE_FP4 = 11,
  AXCL_DATA_TYPE_FP8 = 12,
  AXCL_DATA_TYPE_FP16 = 13,
  AXCL_DATA_TYPE_BF16 = 14,
  AXCL_DATA_TYPE_FP32 = 15,
  AXCL_DATA_TYPE_FP64 = 16,
} axclrtEngineDataType;

/* Process */
typedef axclError (*axclInit_fn)(const char* config_json);
typedef axclError (*axclFinalize_fn)(void);

/* Devices and contexts (a context is bound to the calling thread) */
typedef axclError (*axclrtGetDeviceList_fn)(axclrtDeviceList* list);
typedef axclError (*axclrtSetDevice_fn)(int32_t device_id);
typedef axclError (*axclrtResetDevice_fn)(int32_t device_id);
typedef axclError (*axclrtCreateContext_fn)(axclrtContext* context, int32_t device_id);
typedef axclError (*axclrtDestroyContext_fn)(axclrtContext context);
typedef axclError (*axclrtSetCurrentContext_fn)(axclrtContext context);
typedef axclError (*axclrtGetCurrentContext_fn)(axclrtContext* context);

/* Device memory */
typedef axclError (*axclrtMalloc_fn)(void** dev_ptr, size_t size, axclrtMemMallocPolicy policy);
typedef axclError (*axclrtFree_fn)(void* dev_ptr);
typedef axclError (*axclrtMemcpy_fn)(void* dst, const void* src, size_t count, axclrtMemcpyKind kind);
typedef axclError (*axclrtMemset_fn)(void* dev_ptr, uint8_t value, size_t count);

/* Engine */
typedef axclError (*axclrtEngineInit_fn)(axclrtEngineVNpuKind kind);
typedef axclError (*axclrtEngineFinalize_fn)(void);
typedef axclError (*axclrtEngineLoadFromFile_fn)(const char* path, uint64_t* model_id);
typedef axclError (*axclrtEngineLoadFromMem_fn)(const void* dev_model, uint64_t size, uint64_t* model_id);
typedef axclError (*axclrtEngineUnload_fn)(uint64_t model_id);
typedef axclError (*axclrtEngineCreateContext_fn)(uint64_t model_id, uint64_t* context_id);
typedef axclError (*axclrtEngineGetIOInfo_fn)(uint64_t model_id, axclrtEngineIOInfo* info);
typedef axclError (*axclrtEngineDestroyIOInfo_fn)(axclrtEngineIOInfo info);
typedef axclError (*axclrtEngineGetShapeGroupsCount_fn)(axclrtEngineIOInfo info, int32_t* count);
typedef uint32_t (*axclrtEngineGetNumIO_fn)(axclrtEngineIOInfo info); /* GetNumInputs, GetNumOutputs */
typedef uint64_t (*axclrtEngineGetSizeByIndex_fn)(axclrtEngineIOInfo info, uint32_t group, uint32_t index);
typedef axclError (*axclrtEngineGetDims_fn)(axclrtEngineIOInfo info, uint32_t group, uint32_t index,
                                            axclrtEngineIODims* dims);
typedef const char* (*axclrtEngineGetNameByIndex_fn)(axclrtEngineIOInfo info, uint32_t index); /* no group */
typedef int32_t (*axclrtEngineGetDataType_fn)(axclrtEngineIOInfo info, uint32_t index, axclrtEngineDataType* type);
typedef axclError (*axclrtEngineCreateIO_fn)(axclrtEngineIOInfo info, axclrtEngineIO* io);
typedef axclError (*axclrtEngineDestroyIO_fn)(axclrtEngineIO io);
typedef axclError (*axclrtEngineSetBufferByIndex_fn)(axclrtEngineIO io, uint32_t index, const void* dev_buf,
                                                     uint64_t size); /* SetInput/SetOutputBufferByIndex */
typedef axclError (*axclrtEngineExecute_fn)(uint64_t model_id, uint64_t context_id, uint32_t group,
                                            axclrtEngineIO io);

#ifdef __cplusplus
}
static_assert(sizeof(axclrtDeviceList) == 4 + 4 * AXCL_MAX_DEVICE_COUNT, "axclrtDeviceList layout");
static_assert(sizeof(axclrtEngineIODims) == 4 + 4 * AXCLRT_ENGINE_MAX_DIM_CNT, "axclrtEngineIODims layout");
#endif

#endif /* AXLLM_AXCL_RT_ABI_H */
