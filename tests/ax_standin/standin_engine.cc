// Stand-in libax_engine.so: an ".axmodel" here is a small text file naming a host-built
// .hostmodel ("axllm-standin-axmodel\n<absolute path>\n"); its groups, tensors and runs are the
// host engine's, presented through the vendor structs.
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "ax_engine_abi.h"
#include "axllm/backend.h"
#include "ledger.h"

namespace {

constexpr AX_S32 kErrParam = static_cast<AX_S32>(0x80060003u);

AX_ENGINE_DATA_TYPE_T to_ax(axllm::DType d) {
  switch (d) {
    case axllm::DType::kBF16: return AX_ENGINE_DT_BFLOAT16;
    case axllm::DType::kFP32: return AX_ENGINE_DT_FLOAT32;
    case axllm::DType::kUInt32: return AX_ENGINE_DT_UINT32;
    case axllm::DType::kInt32: return AX_ENGINE_DT_SINT32;
    case axllm::DType::kUInt8: return AX_ENGINE_DT_UINT8;
    case axllm::DType::kInt8: return AX_ENGINE_DT_SINT8;
    default: return AX_ENGINE_DT_UNKNOWN;
  }
}

struct Group {
  std::vector<std::vector<AX_S32>> shapes;
  std::vector<AX_ENGINE_IOMETA_T> inputs;
  std::vector<AX_ENGINE_IOMETA_T> outputs;
  AX_ENGINE_IO_INFO_T info{};
  std::vector<std::shared_ptr<axllm::Buffer>> in_buffers;
  std::vector<std::shared_ptr<axllm::Buffer>> out_buffers;
};

struct Handle {
  std::string path;
  std::unique_ptr<axllm::Model> model;
  std::vector<std::unique_ptr<Group>> groups;
};

std::string hex(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

}  // namespace

extern "C" {

__attribute__((visibility("default"))) AX_S32 AX_ENGINE_Init(AX_ENGINE_NPU_ATTR_T* attr) {
  standin::record("AX_ENGINE_Init mode=" +
                  std::to_string(attr ? static_cast<int>(attr->eHardMode) : -1));
  return standin::injected_failure("AX_ENGINE_Init");
}

__attribute__((visibility("default"))) AX_S32 AX_ENGINE_Deinit(AX_VOID) {
  standin::record("AX_ENGINE_Deinit");
  return 0;
}

__attribute__((visibility("default"))) AX_S32 AX_ENGINE_CreateHandle(AX_ENGINE_HANDLE* out,
                                                                     const AX_VOID* data,
                                                                     AX_U32 size) {
  if (int e = standin::injected_failure("AX_ENGINE_CreateHandle")) return e;
  const std::string text(static_cast<const char*>(data), size);
  const std::string magic = "axllm-standin-axmodel\n";
  if (!out || text.rfind(magic, 0) != 0) return kErrParam;
  std::string path = text.substr(magic.size());
  while (!path.empty() && (path.back() == '\n' || path.back() == '\r')) path.pop_back();
  auto h = std::make_unique<Handle>();
  h->path = path;
  try {
    auto backend = axllm::host_backend();
    h->model = backend->load_model(path, 0);
    for (size_t g = 0; g < h->model->groups().size(); ++g) {
      const auto& spec = h->model->groups()[g];
      auto grp = std::make_unique<Group>();
      for (const auto* list : {&spec.inputs, &spec.outputs}) {
        for (const auto& t : *list) grp->shapes.emplace_back(t.shape.begin(), t.shape.end());
      }
      size_t k = 0;
      auto meta = [&](const axllm::TensorSpec& t) {
        AX_ENGINE_IOMETA_T m{};
        m.pName = const_cast<AX_CHAR*>(t.name.c_str());
        m.pShape = grp->shapes[k].data();
        m.nShapeSize = static_cast<AX_U8>(grp->shapes[k].size());
        ++k;
        m.eDataType = to_ax(t.dtype);
        m.eMemoryType = AX_ENGINE_MT_PHYSICAL;
        m.nSize = static_cast<AX_U32>(t.bytes);
        return m;
      };
      for (const auto& t : spec.inputs) {
        grp->inputs.push_back(meta(t));
        grp->in_buffers.push_back(backend->allocate(t.bytes));
        h->model->bind(static_cast<int>(g), t.name, grp->in_buffers.back());
      }
      for (const auto& t : spec.outputs) {
        grp->outputs.push_back(meta(t));
        grp->out_buffers.push_back(backend->allocate(t.bytes));
        h->model->bind(static_cast<int>(g), t.name, grp->out_buffers.back());
      }
      grp->info.pInputs = grp->inputs.data();
      grp->info.nInputSize = static_cast<AX_U32>(grp->inputs.size());
      grp->info.pOutputs = grp->outputs.data();
      grp->info.nOutputSize = static_cast<AX_U32>(grp->outputs.size());
      grp->info.nMaxBatchSize = 1;
      h->groups.push_back(std::move(grp));
    }
  } catch (const std::exception& e) {
    standin::record(std::string("CreateHandle-failed ") + e.what());
    return kErrParam;
  }
  standin::record("AX_ENGINE_CreateHandle " + hex(h.get()) + " " + path);
  *out = h.release();
  return 0;
}

__attribute__((visibility("default"))) AX_S32 AX_ENGINE_DestroyHandle(AX_ENGINE_HANDLE handle) {
  standin::record("AX_ENGINE_DestroyHandle " + hex(handle));
  delete static_cast<Handle*>(handle);
  return 0;
}

__attribute__((visibility("default"))) AX_S32 AX_ENGINE_CreateContextV2(AX_ENGINE_HANDLE handle,
                                                                        AX_ENGINE_CONTEXT_T* ctx) {
  if (!handle || !ctx) return kErrParam;
  *ctx = handle;
  return 0;
}

__attribute__((visibility("default"))) AX_S32 AX_ENGINE_GetGroupIOInfoCount(AX_ENGINE_HANDLE handle,
                                                                            AX_U32* count) {
  if (!handle || !count) return kErrParam;
  *count = static_cast<AX_U32>(static_cast<Handle*>(handle)->groups.size());
  return 0;
}

__attribute__((visibility("default"))) AX_S32 AX_ENGINE_GetGroupIOInfo(AX_ENGINE_HANDLE handle,
                                                                       AX_U32 index,
                                                                       AX_ENGINE_IO_INFO_T** info) {
  auto* h = static_cast<Handle*>(handle);
  if (!h || !info || index >= h->groups.size()) return kErrParam;
  *info = &h->groups[index]->info;
  return 0;
}

#ifndef STANDIN_OMIT_RUN
__attribute__((visibility("default"))) AX_S32 AX_ENGINE_RunGroupIOSync(AX_ENGINE_HANDLE handle,
                                                                       AX_ENGINE_CONTEXT_T ctx,
                                                                       AX_U32 index,
                                                                       AX_ENGINE_IO_T* io) {
  if (int e = standin::injected_failure("AX_ENGINE_RunGroupIOSync")) return e;
  auto* h = static_cast<Handle*>(handle);
  if (!h || ctx != handle || !io || index >= h->groups.size()) return kErrParam;
  Group& g = *h->groups[index];
  if (io->nInputSize != g.inputs.size() || io->nOutputSize != g.outputs.size()) return kErrParam;
  std::string event = "run " + hex(handle) + " g=" + std::to_string(index) + " in=";
  for (size_t i = 0; i < g.inputs.size(); ++i) {
    const AX_ENGINE_IO_BUFFER_T& b = io->pInputs[i];
    if (b.nSize != g.inputs[i].nSize || !b.pVirAddr) return kErrParam;
    g.in_buffers[i]->write(0, b.pVirAddr, b.nSize);
    char phy[32];
    std::snprintf(phy, sizeof phy, "0x%llx:%u,", static_cast<unsigned long long>(b.phyAddr),
                  b.nSize);
    event += phy;
  }
  event += " out=";
  try {
    h->model->run(static_cast<int>(index));
  } catch (const std::exception& e) {
    standin::record(std::string("run-failed ") + e.what());
    return kErrParam;
  }
  for (size_t i = 0; i < g.outputs.size(); ++i) {
    const AX_ENGINE_IO_BUFFER_T& b = io->pOutputs[i];
    if (b.nSize != g.outputs[i].nSize || !b.pVirAddr) return kErrParam;
    g.out_buffers[i]->read(0, b.pVirAddr, b.nSize);
    char phy[32];
    std::snprintf(phy, sizeof phy, "0x%llx:%u,", static_cast<unsigned long long>(b.phyAddr),
                  b.nSize);
    event += phy;
  }
  standin::record(event);
  return 0;
}
#endif

}  // extern "C"
