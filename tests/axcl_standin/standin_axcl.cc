// Stand-in libaxcl_rt.so. Cards are emulated: "device memory" is host memory tagged with its
// card, and a device call is refused (and ledgered ctx=none / ctx=wrong) unless the calling
// thread holds a current context for that card. An ".axmodel" is the same small text file as for
// the native stand-in ("axllm-standin-axmodel\n<path of a .hostmodel>\n"), run by the host engine.
#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "axcl_rt_abi.h"
#include "axllm/backend.h"
#include "ledger.h"

namespace {

constexpr axclError kErrParam = static_cast<axclError>(0x80300001u);
constexpr axclError kErrNoContext = static_cast<axclError>(0x80300002u);
constexpr axclError kErrNoMemory = static_cast<axclError>(0x80300003u);
constexpr int32_t kFirstDeviceId = 129;  // real cards report PCIe bus numbers, not 0..n-1

struct Ctx {
  int32_t device;
};

struct Block {
  int32_t device;
  size_t size;
};

struct Group {
  std::vector<std::shared_ptr<axllm::Buffer>> in;
  std::vector<std::shared_ptr<axllm::Buffer>> out;
};

struct ModelEntry {
  int32_t device;
  std::string path;
  std::unique_ptr<axllm::Model> model;
  std::vector<Group> groups;
  std::vector<uint64_t> contexts;
};

struct Info {
  uint64_t model;
};

struct Io {
  uint64_t model;
  std::vector<std::pair<const void*, uint64_t>> in;
  std::vector<std::pair<const void*, uint64_t>> out;
};

std::recursive_mutex g_mutex;
bool g_initialised = false;
std::map<uintptr_t, Block> g_blocks;
std::map<uint64_t, std::unique_ptr<ModelEntry>> g_models;
std::map<int32_t, bool> g_engine_init;
uint64_t g_next_model = 1;
uint64_t g_next_engine_ctx = 1000;
thread_local Ctx* t_current = nullptr;

int device_count() {
  const char* env = std::getenv("AXLLM_STANDIN_DEVICES");
  return env ? std::atoi(env) : 2;
}

bool valid_device(int32_t id) {
  return id >= kFirstDeviceId && id < kFirstDeviceId + device_count();
}

std::string hex(const void* p) {
  char b[32];
  std::snprintf(b, sizeof b, "%p", p);
  return b;
}

// "ok" when the calling thread holds a context for `device`.
std::string ctx_state(int32_t device) {
  if (!t_current) return "none";
  if (t_current->device != device) return "wrong:" + std::to_string(t_current->device);
  return "ok";
}

// The block holding [p, p + n), or nullptr.
const Block* find_block(const void* p, size_t n, uintptr_t* base = nullptr) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  auto it = g_blocks.upper_bound(a);
  if (it == g_blocks.begin()) return nullptr;
  --it;
  if (a - it->first > it->second.size || n > it->second.size - (a - it->first)) return nullptr;
  if (base) *base = it->first;
  return &it->second;
}

// Records `event` with the context state for `device`; returns the error for a missing or wrong
// context (0 when fine).
axclError device_call(const std::string& event, int32_t device) {
  const std::string state = ctx_state(device);
  standin::record(event + " dev=" + std::to_string(device) + " ctx=" + state);
  return state == "ok" ? 0 : kErrNoContext;
}

int32_t current_device() { return t_current ? t_current->device : -1; }

ModelEntry* model_of(uint64_t id) {
  const auto it = g_models.find(id);
  return it == g_models.end() ? nullptr : it->second.get();
}

axclrtEngineDataType to_axcl(axllm::DType d) {
  switch (d) {
    case axllm::DType::kBF16: return AXCL_DATA_TYPE_BF16;
    case axllm::DType::kFP16: return AXCL_DATA_TYPE_FP16;
    case axllm::DType::kFP32: return AXCL_DATA_TYPE_FP32;
    case axllm::DType::kUInt32: return AXCL_DATA_TYPE_UINT32;
    case axllm::DType::kInt32: return AXCL_DATA_TYPE_INT32;
    case axllm::DType::kUInt8: return AXCL_DATA_TYPE_UINT8;
    case axllm::DType::kInt8: return AXCL_DATA_TYPE_INT8;
  }
  return AXCL_DATA_TYPE_NONE;
}

const axllm::TensorSpec* tensor(const Info* info, bool input, uint32_t group, uint32_t index) {
  ModelEntry* m = info ? model_of(info->model) : nullptr;
  if (!m || group >= m->model->groups().size()) return nullptr;
  const auto& list = input ? m->model->groups()[group].inputs : m->model->groups()[group].outputs;
  return index < list.size() ? &list[index] : nullptr;
}

axclError load(const std::string& text, uint64_t* model_id, const std::string& origin) {
  const std::string magic = "axllm-standin-axmodel\n";
  if (!model_id || text.rfind(magic, 0) != 0) return kErrParam;
  std::string path = text.substr(magic.size());
  while (!path.empty() && (path.back() == '\n' || path.back() == '\r')) path.pop_back();
  auto m = std::make_unique<ModelEntry>();
  m->device = current_device();
  m->path = path;
  try {
    auto backend = axllm::host_backend();
    m->model = backend->load_model(path, 0);
    for (size_t g = 0; g < m->model->groups().size(); ++g) {
      const auto& spec = m->model->groups()[g];
      Group grp;
      for (const auto& t : spec.inputs) {
        grp.in.push_back(backend->allocate(t.bytes));
        m->model->bind(static_cast<int>(g), t.name, grp.in.back());
      }
      for (const auto& t : spec.outputs) {
        grp.out.push_back(backend->allocate(t.bytes));
        m->model->bind(static_cast<int>(g), t.name, grp.out.back());
      }
      m->groups.push_back(std::move(grp));
    }
  } catch (const std::exception& e) {
    standin::record(std::string("load-failed ") + e.what());
    return kErrParam;
  }
  *model_id = g_next_model++;
  standin::record("model " + std::to_string(*model_id) + " dev=" + std::to_string(m->device) +
                  " ctx=n/a " + origin);
  g_models[*model_id] = std::move(m);
  return 0;
}

}  // namespace

#define STANDIN_API extern "C" __attribute__((visibility("default")))
#define LOCK std::lock_guard<std::recursive_mutex> lock(g_mutex)

STANDIN_API axclError axclInit(const char*) {
  LOCK;
  standin::record("axclInit ctx=n/a");
  if (int e = standin::injected_failure("axclInit")) return e;
  g_initialised = true;
  return 0;
}

STANDIN_API axclError axclFinalize(void) {
  LOCK;
  standin::record("axclFinalize live=" + std::to_string(g_blocks.size()) + " ctx=n/a");
  g_initialised = false;
  return 0;
}

STANDIN_API axclError axclrtGetDeviceList(axclrtDeviceList* list) {
  LOCK;
  standin::record("axclrtGetDeviceList ctx=n/a");
  if (!list || !g_initialised) return kErrParam;
  const int n = device_count();
  list->num = static_cast<uint32_t>(n);
  for (int i = 0; i < n; ++i) list->devices[i] = kFirstDeviceId + i;
  return 0;
}

STANDIN_API axclError axclrtSetDevice(int32_t id) {
  LOCK;
  standin::record("axclrtSetDevice dev=" + std::to_string(id) + " ctx=n/a");
  if (int e = standin::injected_failure("axclrtSetDevice")) return e;
  if (!g_initialised || !valid_device(id)) return kErrParam;
  if (!t_current || t_current->device != id) t_current = new Ctx{id};  // the default context
  return 0;
}

STANDIN_API axclError axclrtResetDevice(int32_t id) {
  LOCK;
  standin::record("axclrtResetDevice dev=" + std::to_string(id) + " ctx=n/a");
  return valid_device(id) ? 0 : kErrParam;
}

STANDIN_API axclError axclrtCreateContext(axclrtContext* ctx, int32_t id) {
  LOCK;
  standin::record("axclrtCreateContext dev=" + std::to_string(id) + " ctx=n/a");
  if (!ctx || !valid_device(id)) return kErrParam;
  t_current = new Ctx{id};  // created contexts become the thread's current one
  *ctx = t_current;
  return 0;
}

STANDIN_API axclError axclrtDestroyContext(axclrtContext ctx) {
  LOCK;
  standin::record("axclrtDestroyContext ctx=n/a");
  if (!ctx) return kErrParam;
  if (t_current == ctx) t_current = nullptr;
  return 0;
}

STANDIN_API axclError axclrtSetCurrentContext(axclrtContext ctx) {
  LOCK;
  if (!ctx) return kErrParam;
  t_current = static_cast<Ctx*>(ctx);
  standin::record("axclrtSetCurrentContext dev=" + std::to_string(t_current->device) + " ctx=n/a");
  return 0;
}

STANDIN_API axclError axclrtGetCurrentContext(axclrtContext* ctx) {
  LOCK;
  if (!ctx) return kErrParam;
  *ctx = t_current;
  return 0;
}

STANDIN_API axclError axclrtMalloc(void** p, size_t size, axclrtMemMallocPolicy) {
  LOCK;
  if (int e = standin::injected_failure("axclrtMalloc")) return e;
  const int32_t dev = current_device();
  if (!p || size == 0) return kErrParam;
  if (!t_current) return device_call("axclrtMalloc size=" + std::to_string(size), dev);
  void* mem = std::aligned_alloc(128, (size + 127) / 128 * 128);
  if (!mem) return kErrNoMemory;
  g_blocks[reinterpret_cast<uintptr_t>(mem)] = Block{dev, size};
  *p = mem;
  return device_call("axclrtMalloc ptr=" + hex(mem) + " size=" + std::to_string(size), dev);
}

STANDIN_API axclError axclrtFree(void* p) {
  LOCK;
  const auto it = g_blocks.find(reinterpret_cast<uintptr_t>(p));
  if (it == g_blocks.end()) {
    standin::record("axclrtFree-invalid ptr=" + hex(p) + " ctx=n/a");
    return kErrParam;
  }
  if (axclError e = device_call("axclrtFree ptr=" + hex(p), it->second.device)) return e;
  std::free(p);
  g_blocks.erase(it);
  return 0;
}

STANDIN_API axclError axclrtMemcpy(void* dst, const void* src, size_t n, axclrtMemcpyKind kind) {
  LOCK;
  if (int e = standin::injected_failure("axclrtMemcpy")) return e;
  const Block* d = find_block(dst, n);
  const Block* s = find_block(src, n);
  const char* name = "?";
  bool ok = false;
  int32_t dev = current_device();
  switch (kind) {
    case AXCL_MEMCPY_HOST_TO_DEVICE:
      name = "H2D";
      ok = d && !s;
      if (d) dev = d->device;
      break;
    case AXCL_MEMCPY_DEVICE_TO_HOST:
      name = "D2H";
      ok = s && !d;
      if (s) dev = s->device;
      break;
    case AXCL_MEMCPY_DEVICE_TO_DEVICE:
      name = "D2D";
      ok = d && s && d->device == s->device;
      if (d) dev = d->device;
      break;
    case AXCL_MEMCPY_HOST_TO_HOST:
      name = "H2H";
      ok = !d && !s;
      break;
    default: break;
  }
  const std::string event = std::string("axclrtMemcpy kind=") + name + " size=" + std::to_string(n);
  if (!ok) {
    standin::record("axclrtMemcpy-invalid kind=" + std::string(name) +
                    " size=" + std::to_string(n) + " ctx=n/a");
    return kErrParam;
  }
  if (axclError e = device_call(event, dev)) return e;
  std::memmove(dst, src, n);
  return 0;
}

STANDIN_API axclError axclrtMemset(void* dst, uint8_t value, size_t n) {
  LOCK;
  const Block* d = find_block(dst, n);
  if (!d) {
    standin::record("axclrtMemset-invalid size=" + std::to_string(n) + " ctx=n/a");
    return kErrParam;
  }
  if (axclError e = device_call("axclrtMemset size=" + std::to_string(n), d->device)) return e;
  std::memset(dst, value, n);
  return 0;
}

STANDIN_API axclError axclrtEngineInit(axclrtEngineVNpuKind kind) {
  LOCK;
  if (int e = standin::injected_failure("axclrtEngineInit")) return e;
  const int32_t dev = current_device();
  if (axclError e =
          device_call("axclrtEngineInit kind=" + std::to_string(static_cast<int>(kind)), dev))
    return e;
  g_engine_init[dev] = true;
  return 0;
}

STANDIN_API axclError axclrtEngineFinalize(void) {
  LOCK;
  return device_call("axclrtEngineFinalize", current_device());
}

STANDIN_API axclError axclrtEngineLoadFromFile(const char* path, uint64_t* model_id) {
  LOCK;
  if (int e = standin::injected_failure("axclrtEngineLoadFromFile")) return e;
  const int32_t dev = current_device();
  if (axclError e = device_call(std::string("axclrtEngineLoadFromFile ") + (path ? path : ""), dev))
    return e;
  if (!g_engine_init[dev] || !path) return kErrParam;
  std::ifstream f(path, std::ios::binary);
  if (!f) return kErrParam;
  const std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  return load(text, model_id, path);
}

STANDIN_API axclError axclrtEngineLoadFromMem(const void* mem, uint64_t size, uint64_t* model_id) {
  LOCK;
  const int32_t dev = current_device();
  if (axclError e = device_call("axclrtEngineLoadFromMem size=" + std::to_string(size), dev))
    return e;
  const Block* b = find_block(mem, size);
  if (!b || b->device != dev || !g_engine_init[dev]) return kErrParam;
  return load(std::string(static_cast<const char*>(mem), size), model_id, "(memory)");
}

STANDIN_API axclError axclrtEngineUnload(uint64_t model_id) {
  LOCK;
  ModelEntry* m = model_of(model_id);
  if (!m) return kErrParam;
  if (axclError e = device_call("axclrtEngineUnload model=" + std::to_string(model_id), m->device))
    return e;
  g_models.erase(model_id);
  return 0;
}

STANDIN_API axclError axclrtEngineCreateContext(uint64_t model_id, uint64_t* context_id) {
  LOCK;
  ModelEntry* m = model_of(model_id);
  if (!m || !context_id) return kErrParam;
  if (axclError e =
          device_call("axclrtEngineCreateContext model=" + std::to_string(model_id), m->device))
    return e;
  *context_id = g_next_engine_ctx++;
  m->contexts.push_back(*context_id);
  return 0;
}

STANDIN_API axclError axclrtEngineGetIOInfo(uint64_t model_id, axclrtEngineIOInfo* info) {
  LOCK;
  ModelEntry* m = model_of(model_id);
  if (!m || !info) return kErrParam;
  if (axclError e =
          device_call("axclrtEngineGetIOInfo model=" + std::to_string(model_id), m->device))
    return e;
  *info = new Info{model_id};
  return 0;
}

STANDIN_API axclError axclrtEngineDestroyIOInfo(axclrtEngineIOInfo info) {
  LOCK;
  auto* i = static_cast<Info*>(info);
  ModelEntry* m = i ? model_of(i->model) : nullptr;
  if (!m) return kErrParam;
  if (axclError e = device_call("axclrtEngineDestroyIOInfo", m->device)) return e;
  delete i;
  return 0;
}

STANDIN_API axclError axclrtEngineGetShapeGroupsCount(axclrtEngineIOInfo info, int32_t* count) {
  LOCK;
  ModelEntry* m = info ? model_of(static_cast<Info*>(info)->model) : nullptr;
  if (!m || !count) return kErrParam;
  if (axclError e = device_call("axclrtEngineGetShapeGroupsCount", m->device)) return e;
  *count = static_cast<int32_t>(m->model->groups().size());
  return 0;
}

namespace {
template <bool kInput>
uint32_t num_io(axclrtEngineIOInfo info) {
  LOCK;
  ModelEntry* m = info ? model_of(static_cast<Info*>(info)->model) : nullptr;
  if (!m ||
      device_call(kInput ? "axclrtEngineGetNumInputs" : "axclrtEngineGetNumOutputs", m->device))
    return 0;
  const auto& g0 = m->model->groups()[0];
  return static_cast<uint32_t>(kInput ? g0.inputs.size() : g0.outputs.size());
}
template <bool kInput>
uint64_t size_of(axclrtEngineIOInfo info, uint32_t group, uint32_t index) {
  LOCK;
  const auto* t = tensor(static_cast<Info*>(info), kInput, group, index);
  if (!t ||
      device_call(kInput ? "axclrtEngineGetInputSizeByIndex" : "axclrtEngineGetOutputSizeByIndex",
                  model_of(static_cast<Info*>(info)->model)->device)) {
    return 0;
  }
  return t->bytes;
}
template <bool kInput>
axclError dims_of(axclrtEngineIOInfo info, uint32_t group, uint32_t index,
                  axclrtEngineIODims* dims) {
  LOCK;
  const auto* t = tensor(static_cast<Info*>(info), kInput, group, index);
  if (!t || !dims) return kErrParam;
  if (axclError e = device_call(kInput ? "axclrtEngineGetInputDims" : "axclrtEngineGetOutputDims",
                                model_of(static_cast<Info*>(info)->model)->device)) {
    return e;
  }
  dims->dimCount = static_cast<int32_t>(t->shape.size());
  for (size_t i = 0; i < t->shape.size(); ++i) dims->dims[i] = static_cast<int32_t>(t->shape[i]);
  return 0;
}
template <bool kInput>
const char* name_of(axclrtEngineIOInfo info, uint32_t index) {
  LOCK;
  const auto* t = tensor(static_cast<Info*>(info), kInput, 0, index);
  if (!t ||
      device_call(kInput ? "axclrtEngineGetInputNameByIndex" : "axclrtEngineGetOutputNameByIndex",
                  model_of(static_cast<Info*>(info)->model)->device)) {
    return nullptr;
  }
  return t->name.c_str();
}
template <bool kInput>
int32_t dtype_of(axclrtEngineIOInfo info, uint32_t index, axclrtEngineDataType* type) {
  LOCK;
  const auto* t = tensor(static_cast<Info*>(info), kInput, 0, index);
  if (!t || !type) return kErrParam;
  if (axclError e =
          device_call(kInput ? "axclrtEngineGetInputDataType" : "axclrtEngineGetOutputDataType",
                      model_of(static_cast<Info*>(info)->model)->device)) {
    return e;
  }
  *type = to_axcl(t->dtype);
  return 0;
}
}  // namespace

STANDIN_API uint32_t axclrtEngineGetNumInputs(axclrtEngineIOInfo info) {
  return num_io<true>(info);
}
STANDIN_API uint32_t axclrtEngineGetNumOutputs(axclrtEngineIOInfo info) {
  return num_io<false>(info);
}
STANDIN_API uint64_t axclrtEngineGetInputSizeByIndex(axclrtEngineIOInfo info, uint32_t g,
                                                     uint32_t i) {
  return size_of<true>(info, g, i);
}
STANDIN_API uint64_t axclrtEngineGetOutputSizeByIndex(axclrtEngineIOInfo info, uint32_t g,
                                                      uint32_t i) {
  return size_of<false>(info, g, i);
}
STANDIN_API axclError axclrtEngineGetInputDims(axclrtEngineIOInfo info, uint32_t g, uint32_t i,
                                               axclrtEngineIODims* d) {
  return dims_of<true>(info, g, i, d);
}
STANDIN_API axclError axclrtEngineGetOutputDims(axclrtEngineIOInfo info, uint32_t g, uint32_t i,
                                                axclrtEngineIODims* d) {
  return dims_of<false>(info, g, i, d);
}
STANDIN_API const char* axclrtEngineGetInputNameByIndex(axclrtEngineIOInfo info, uint32_t i) {
  return name_of<true>(info, i);
}
STANDIN_API const char* axclrtEngineGetOutputNameByIndex(axclrtEngineIOInfo info, uint32_t i) {
  return name_of<false>(info, i);
}
STANDIN_API int32_t axclrtEngineGetInputDataType(axclrtEngineIOInfo info, uint32_t i,
                                                 axclrtEngineDataType* t) {
  return dtype_of<true>(info, i, t);
}
STANDIN_API int32_t axclrtEngineGetOutputDataType(axclrtEngineIOInfo info, uint32_t i,
                                                  axclrtEngineDataType* t) {
  return dtype_of<false>(info, i, t);
}

STANDIN_API axclError axclrtEngineCreateIO(axclrtEngineIOInfo info, axclrtEngineIO* io) {
  LOCK;
  auto* i = static_cast<Info*>(info);
  ModelEntry* m = i ? model_of(i->model) : nullptr;
  if (!m || !io) return kErrParam;
  if (axclError e = device_call("axclrtEngineCreateIO", m->device)) return e;
  size_t n_in = 0, n_out = 0;
  for (const auto& g : m->model->groups()) {
    n_in = std::max(n_in, g.inputs.size());
    n_out = std::max(n_out, g.outputs.size());
  }
  auto* x = new Io{i->model, {}, {}};
  x->in.resize(n_in, {nullptr, 0});
  x->out.resize(n_out, {nullptr, 0});
  *io = x;
  return 0;
}

STANDIN_API axclError axclrtEngineDestroyIO(axclrtEngineIO io) {
  LOCK;
  auto* x = static_cast<Io*>(io);
  ModelEntry* m = x ? model_of(x->model) : nullptr;
  if (!m) return kErrParam;
  if (axclError e = device_call("axclrtEngineDestroyIO", m->device)) return e;
  delete x;
  return 0;
}

namespace {
axclError set_buffer(bool input, axclrtEngineIO io, uint32_t index, const void* p, uint64_t size) {
  LOCK;
  auto* x = static_cast<Io*>(io);
  ModelEntry* m = x ? model_of(x->model) : nullptr;
  if (!m) return kErrParam;
  const char* fn =
      input ? "axclrtEngineSetInputBufferByIndex" : "axclrtEngineSetOutputBufferByIndex";
  if (axclError e = device_call(std::string(fn) + " i=" + std::to_string(index), m->device))
    return e;
  auto& list = input ? x->in : x->out;
  const Block* b = find_block(p, size);
  if (index >= list.size() || !b || b->device != m->device) {
    standin::record(std::string(fn) + "-invalid i=" + std::to_string(index) + " ctx=n/a");
    return kErrParam;
  }
  list[index] = {p, size};
  return 0;
}
}  // namespace

STANDIN_API axclError axclrtEngineSetInputBufferByIndex(axclrtEngineIO io, uint32_t i,
                                                        const void* p, uint64_t n) {
  return set_buffer(true, io, i, p, n);
}
STANDIN_API axclError axclrtEngineSetOutputBufferByIndex(axclrtEngineIO io, uint32_t i,
                                                         const void* p, uint64_t n) {
  return set_buffer(false, io, i, p, n);
}

#ifndef STANDIN_OMIT_EXECUTE
STANDIN_API axclError axclrtEngineExecute(uint64_t model_id, uint64_t context_id, uint32_t group,
                                          axclrtEngineIO io) {
  LOCK;
  if (int e = standin::injected_failure("axclrtEngineExecute")) return e;
  ModelEntry* m = model_of(model_id);
  auto* x = static_cast<Io*>(io);
  if (!m || !x || x->model != model_id || group >= m->groups.size()) return kErrParam;
  if (axclError e = device_call(
          "axclrtEngineExecute model=" + std::to_string(model_id) + " g=" + std::to_string(group),
          m->device)) {
    return e;
  }
  if (std::find(m->contexts.begin(), m->contexts.end(), context_id) == m->contexts.end())
    return kErrParam;
  const auto& spec = m->model->groups()[group];
  Group& g = m->groups[group];
  auto check = [&](const std::pair<const void*, uint64_t>& b, const axllm::TensorSpec& t) {
    const Block* blk = find_block(b.first, t.bytes);
    return b.first && b.second == t.bytes && blk && blk->device == m->device;
  };
  for (size_t i = 0; i < spec.inputs.size(); ++i) {
    if (!check(x->in[i], spec.inputs[i])) {
      standin::record("axclrtEngineExecute-invalid input " + spec.inputs[i].name + " ctx=n/a");
      return kErrParam;
    }
    g.in[i]->write(0, x->in[i].first, spec.inputs[i].bytes);
  }
  for (size_t i = 0; i < spec.outputs.size(); ++i) {
    if (!check(x->out[i], spec.outputs[i])) {
      standin::record("axclrtEngineExecute-invalid output " + spec.outputs[i].name + " ctx=n/a");
      return kErrParam;
    }
  }
  try {
    m->model->run(static_cast<int>(group));
  } catch (const std::exception& e) {
    standin::record(std::string("run-failed ") + e.what());
    return kErrParam;
  }
  for (size_t i = 0; i < spec.outputs.size(); ++i) {
    g.out[i]->read(0, const_cast<void*>(x->out[i].first), spec.outputs[i].bytes);
  }
  return 0;
}
#endif
