/* axllm's own declarations of the subset of AXERA's native NPU ABI (libax_sys, libax_engine)
 * that it uses, written from the documented types, enums, struct layouts and prototypes of the
 * AX650 / AX620E BSP SDKs. Nothing here is copied from the SDK headers.
 *
 * Layout notes: the SDK pads every struct below to 128 bytes on aarch64 with trailing
 * AX_U64 reserved words (11 / 13 on arm32). These declarations use the LP64 (aarch64) layout
 * on every 64-bit target, so the test stand-in compiled on x86_64 matches a board. AX_ENGINE_IO_T
 * carries nParallelRun on AX650; the AX620E layout has a reserved word there instead; both are
 * 128 bytes and axllm always writes 0 to that word. */
#ifndef AXLLM_AX_ENGINE_ABI_H
#define AXLLM_AX_ENGINE_ABI_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef uint64_t AX_U64;
typedef uint32_t AX_U32;
typedef uint16_t AX_U16;
typedef uint8_t AX_U8;
typedef int64_t AX_S64;
typedef int32_t AX_S32;
typedef int8_t AX_S8;
typedef char AX_CHAR;
typedef void AX_VOID;
typedef enum { AX_FALSE = 0, AX_TRUE = 1 } AX_BOOL;

typedef void* AX_ENGINE_HANDLE;
typedef void* AX_ENGINE_CONTEXT_T;
typedef AX_U32 AX_ENGINE_NPU_SET_T;

typedef enum {
  AX_ENGINE_TENSOR_LAYOUT_UNKNOWN = 0,
  AX_ENGINE_TENSOR_LAYOUT_NHWC = 1,
  AX_ENGINE_TENSOR_LAYOUT_NCHW = 2,
} AX_ENGINE_TENSOR_LAYOUT_T;

typedef enum {
  AX_ENGINE_MT_PHYSICAL = 0,
  AX_ENGINE_MT_VIRTUAL = 1,
  AX_ENGINE_MT_OCM = 2,
} AX_ENGINE_MEMORY_TYPE_T;

typedef enum {
  AX_ENGINE_DT_UNKNOWN = 0,
  AX_ENGINE_DT_UINT8 = 1,
  AX_ENGINE_DT_UINT16 = 2,
  AX_ENGINE_DT_FLOAT32 = 3,
  AX_ENGINE_DT_SINT16 = 4,
  AX_ENGINE_DT_SINT8 = 5,
  AX_ENGINE_DT_SINT32 = 6,
  AX_ENGINE_DT_UINT32 = 7,
  AX_ENGINE_DT_FLOAT64 = 8,
  AX_ENGINE_DT_BFLOAT16 = 9,
} AX_ENGINE_DATA_TYPE_T;

/* AX650: DISABLE, STD, BIG_LITTLE, LITTLE_BIG; AX620E: DISABLE, ENABLE. 0 disables vNPU on both. */
typedef enum { AX_ENGINE_VIRTUAL_NPU_DISABLE = 0 } AX_ENGINE_NPU_MODE_T;

typedef struct {
  AX_ENGINE_NPU_MODE_T eHardMode;
  AX_U32 reserve[8];
} AX_ENGINE_NPU_ATTR_T;

typedef struct {
  AX_S32 eColorSpace;
  AX_U64 u64Reserved[18];
} AX_ENGINE_IOMETA_EX_T;

typedef struct {
  AX_CHAR* pName;
  AX_S32* pShape;
  AX_U8 nShapeSize;
  AX_ENGINE_TENSOR_LAYOUT_T eLayout;
  AX_ENGINE_MEMORY_TYPE_T eMemoryType;
  AX_ENGINE_DATA_TYPE_T eDataType;
  AX_ENGINE_IOMETA_EX_T* pExtraMeta;
  AX_U32 nSize;
  AX_U32 nQuantizationValue;
  AX_S32* pStride;
  AX_U64 u64Reserved[9];
} AX_ENGINE_IOMETA_T;

typedef struct {
  AX_ENGINE_IOMETA_T* pInputs;
  AX_U32 nInputSize;
  AX_ENGINE_IOMETA_T* pOutputs;
  AX_U32 nOutputSize;
  AX_U32 nMaxBatchSize;
  AX_BOOL bDynamicBatchSize;
  AX_U64 u64Reserved[11];
} AX_ENGINE_IO_INFO_T;

typedef struct {
  AX_U64 phyAddr;
  AX_VOID* pVirAddr;
  AX_U32 nSize;
  AX_S32* pStride;
  AX_U8 nStrideSize;
  AX_U64 u64Reserved[11];
} AX_ENGINE_IO_BUFFER_T;

typedef struct {
  AX_U32 nWbtIndex;
  AX_U64 u64Reserved[7];
} AX_ENGINE_IO_SETTING_T;

typedef struct {
  AX_ENGINE_IO_BUFFER_T* pInputs;
  AX_U32 nInputSize;
  AX_ENGINE_IO_BUFFER_T* pOutputs;
  AX_U32 nOutputSize;
  AX_U32 nBatchSize;
  AX_ENGINE_IO_SETTING_T* pIoSetting;
  AX_U32 nParallelRun; /* AX650; a reserved word on AX620E. Always 0 here. */
  AX_U64 u64Reserved[10];
} AX_ENGINE_IO_T;

/* libax_sys */
typedef AX_S32 (*AX_SYS_Init_fn)(AX_VOID);
typedef AX_S32 (*AX_SYS_Deinit_fn)(AX_VOID);
typedef AX_S32 (*AX_SYS_MemAllocCached_fn)(AX_U64* phy, AX_VOID** vir, AX_U32 size, AX_U32 align,
                                           const AX_S8* token);
typedef AX_S32 (*AX_SYS_MemFree_fn)(AX_U64 phy, AX_VOID* vir);
typedef AX_S32 (*AX_SYS_MflushCache_fn)(AX_U64 phy, AX_VOID* vir, AX_U32 size);
typedef AX_S32 (*AX_SYS_MinvalidateCache_fn)(AX_U64 phy, AX_VOID* vir, AX_U32 size);

/* libax_engine */
typedef AX_S32 (*AX_ENGINE_Init_fn)(AX_ENGINE_NPU_ATTR_T* attr);
typedef AX_S32 (*AX_ENGINE_Deinit_fn)(AX_VOID);
typedef AX_S32 (*AX_ENGINE_CreateHandle_fn)(AX_ENGINE_HANDLE* handle, const AX_VOID* data, AX_U32 size);
typedef AX_S32 (*AX_ENGINE_DestroyHandle_fn)(AX_ENGINE_HANDLE handle);
typedef AX_S32 (*AX_ENGINE_CreateContextV2_fn)(AX_ENGINE_HANDLE handle, AX_ENGINE_CONTEXT_T* context);
typedef AX_S32 (*AX_ENGINE_GetGroupIOInfoCount_fn)(AX_ENGINE_HANDLE handle, AX_U32* count);
typedef AX_S32 (*AX_ENGINE_GetGroupIOInfo_fn)(AX_ENGINE_HANDLE handle, AX_U32 index, AX_ENGINE_IO_INFO_T** info);
typedef AX_S32 (*AX_ENGINE_RunGroupIOSync_fn)(AX_ENGINE_HANDLE handle, AX_ENGINE_CONTEXT_T context,
                                              AX_U32 group, AX_ENGINE_IO_T* io);

#ifdef __cplusplus
}

/* The documented LP64 sizes (every struct padded to 128 bytes except the two small ones). */
static_assert(sizeof(void*) != 8 || sizeof(AX_ENGINE_IOMETA_T) == 128, "AX_ENGINE_IOMETA_T layout");
static_assert(sizeof(void*) != 8 || sizeof(AX_ENGINE_IO_INFO_T) == 128, "AX_ENGINE_IO_INFO_T layout");
static_assert(sizeof(void*) != 8 || sizeof(AX_ENGINE_IO_BUFFER_T) == 128, "AX_ENGINE_IO_BUFFER_T layout");
static_assert(sizeof(void*) != 8 || sizeof(AX_ENGINE_IO_T) == 128, "AX_ENGINE_IO_T layout");
static_assert(sizeof(AX_ENGINE_IO_SETTING_T) == 64, "AX_ENGINE_IO_SETTING_T layout");
static_assert(sizeof(AX_ENGINE_NPU_ATTR_T) == 36, "AX_ENGINE_NPU_ATTR_T layout");
static_assert(sizeof(void*) != 8 || sizeof(AX_ENGINE_IOMETA_EX_T) == 152, "AX_ENGINE_IOMETA_EX_T layout");
static_assert(sizeof(void*) != 8 || offsetof(AX_ENGINE_IOMETA_T, nSize) == 40, "AX_ENGINE_IOMETA_T.nSize");
static_assert(sizeof(void*) != 8 || offsetof(AX_ENGINE_IOMETA_T, pStride) == 48, "AX_ENGINE_IOMETA_T.pStride");
static_assert(sizeof(void*) != 8 || offsetof(AX_ENGINE_IO_INFO_T, nOutputSize) == 24, "AX_ENGINE_IO_INFO_T.nOutputSize");
static_assert(sizeof(void*) != 8 || offsetof(AX_ENGINE_IO_BUFFER_T, nStrideSize) == 32, "AX_ENGINE_IO_BUFFER_T.nStrideSize");
static_assert(sizeof(void*) != 8 || offsetof(AX_ENGINE_IO_T, pIoSetting) == 32, "AX_ENGINE_IO_T.pIoSetting");
static_assert(sizeof(void*) != 8 || offsetof(AX_ENGINE_IO_T, nParallelRun) == 40, "AX_ENGINE_IO_T.nParallelRun");
#endif

#endif /* AXLLM_AX_ENGINE_ABI_H */
