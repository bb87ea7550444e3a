#include "ax/ax_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "ax/ax_library.h"
#include "axllm/errors.h"
#include "axllm/log.h"
#include "util/buffer_range.h"
#include "util/vendor_blocks.h"

namespace axllm::detail {
namespace {

// Frees a CMM block recorded in the vendor block table (at close, at exit or on a signal: the
// same call from any thread).
void free_cmm(uint64_t phy, void* vir, bool /*in_signal*/) { ax_api().mem_free(phy, vir); }

class AxBuffer final : public Buffer {
 public:
  explicit AxBuffer(size_t bytes) : size_(bytes) {
    const AxApi& api = ax_api();
    static const AX_S8 kToken[] = "axllm";
    void* vir = nullptr;
    ax_check(api.mem_alloc_cached(&phy_, &vir, static_cast<AX_U32>(std::max<size_t>(bytes, 1)), 128,
                                  kToken),
             "AX_SYS_MemAllocCached", "allocating " + std::to_string(bytes) + " bytes of CMM");
    vir_ = static_cast<uint8_t*>(vir);
    std::memset(vir_, 0, bytes);
    slot_ = vendor_blocks::record(free_cmm, phy_, vir_);
  }
  // Frees the block now, unless exit or a signal already did.
  ~AxBuffer() override {
    if (!vendor_blocks::claim(slot_)) return;
    free_cmm(phy_, vir_, false);
    vendor_blocks::release(slot_);
  }
  AxBuffer(const AxBuffer&) = delete;
  AxBuffer& operator=(const AxBuffer&) = delete;

  size_t size() const override { return size_; }
  void write(size_t offset, const void* src, size_t n) override {
    check(offset, n);
    std::memcpy(vir_ + offset, src, n);
  }
  void read(size_t offset, void* dst, size_t n) const override {
    check(offset, n);
    std::memcpy(dst, vir_ + offset, n);
  }
  void copy_from(const Buffer& src, size_t src_offset, size_t dst_offset, size_t n) override {
    check(dst_offset, n);
    src.read(src_offset, vir_ + dst_offset, n);
  }
  void fill(size_t offset, unsigned char value, size_t n) override {
    check(offset, n);
    std::memset(vir_ + offset, value, n);
  }
  AX_U64 phy() const { return phy_; }
  uint8_t* vir() const { return vir_; }

 private:
  void check(size_t offset, size_t n) const {
    check_buffer_range("CMM buffer access", offset, n, size_);
  }
  AX_U64 phy_ = 0;
  uint8_t* vir_ = nullptr;
  size_t size_;
  int slot_ = -1;  // in the vendor block table
};

DType from_ax(AX_ENGINE_DATA_TYPE_T t, const std::string& where) {
  switch (t) {
    case AX_ENGINE_DT_BFLOAT16: return DType::kBF16;
    case AX_ENGINE_DT_FLOAT32: return DType::kFP32;
    case AX_ENGINE_DT_UINT32: return DType::kUInt32;
    case AX_ENGINE_DT_SINT32: return DType::kInt32;
    case AX_ENGINE_DT_UINT8: return DType::kUInt8;
    case AX_ENGINE_DT_SINT8: return DType::kInt8;
    case AX_ENGINE_DT_UINT16: return DType::kBF16;  // older SDKs report bf16 tensors as uint16
    default:
      throw ModelLoadError(where + ": tensor data type " + std::to_string(static_cast<int>(t)) +
                           " is not supported (bf16 needs AX650 SDK >= 2.18 / AX620E SDK >= 3.12)");
  }
}

struct Bound {
  std::shared_ptr<Buffer> buffer;
  size_t offset = 0;
};

class AxModel final : public Model {
 public:
  explicit AxModel(const std::string& path) : path_(path) {
    const AxApi& api = ax_api();
    std::ifstream f(path, std::ios::binary);
    if (!f) throw ModelLoadError(path + ": cannot open");
    const std::vector<char> data((std::istreambuf_iterator<char>(f)),
                                 std::istreambuf_iterator<char>());
    if (data.empty()) throw ModelLoadError(path + ": file is empty");
    ax_check(api.create_handle(&handle_, data.data(), static_cast<AX_U32>(data.size())),
             "AX_ENGINE_CreateHandle", path);
    try {
      ax_check(api.create_context_v2(handle_, &context_), "AX_ENGINE_CreateContextV2", path);
      AX_U32 count = 0;
      ax_check(api.group_io_info_count(handle_, &count), "AX_ENGINE_GetGroupIOInfoCount", path);
      for (AX_U32 g = 0; g < count; ++g) {
        AX_ENGINE_IO_INFO_T* info = nullptr;
        ax_check(api.group_io_info(handle_, g, &info), "AX_ENGINE_GetGroupIOInfo", path);
        GroupSpec spec;
        for (AX_U32 i = 0; i < info->nInputSize; ++i)
          spec.inputs.push_back(describe(info->pInputs[i], g));
        for (AX_U32 i = 0; i < info->nOutputSize; ++i)
          spec.outputs.push_back(describe(info->pOutputs[i], g));
        groups_.push_back(std::move(spec));
      }
    } catch (...) {
      api.destroy_handle(handle_);
      throw;
    }
    inputs_.resize(groups_.size());
    outputs_.resize(groups_.size());
    io_buffers_in_.resize(groups_.size());
    io_buffers_out_.resize(groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) {
      inputs_[g].resize(groups_[g].inputs.size());
      outputs_[g].resize(groups_[g].outputs.size());
      io_buffers_in_[g].resize(groups_[g].inputs.size());
      io_buffers_out_[g].resize(groups_[g].outputs.size());
    }
  }
  ~AxModel() override { ax_api().destroy_handle(handle_); }

  const std::string& path() const override { return path_; }
  const std::vector<GroupSpec>& groups() const override { return groups_; }

  void bind(int group, std::string_view tensor, std::shared_ptr<Buffer> buffer,
            size_t offset) override {
    check_group(group);
    if (!dynamic_cast<AxBuffer*>(buffer.get())) {
      throw std::invalid_argument(path_ + ": tensor '" + std::string(tensor) +
                                  "': buffer was not made by the ax backend");
    }
    const GroupSpec& spec = groups_[group];
    int i = find_tensor(spec.inputs, tensor, group);
    Bound* slot = nullptr;
    const TensorSpec* ts = nullptr;
    if (i >= 0) {
      slot = &inputs_[group][i];
      ts = &spec.inputs[i];
    } else if ((i = find_tensor(spec.outputs, tensor, group)) >= 0) {
      slot = &outputs_[group][i];
      ts = &spec.outputs[i];
    } else {
      throw std::invalid_argument(path_ + ": group " + std::to_string(group) +
                                  " has no tensor named '" + std::string(tensor) + "'");
    }
    if (offset > buffer->size() || buffer->size() - offset < ts->bytes) {
      throw std::invalid_argument(path_ + ": tensor '" + ts->name + "' needs " +
                                  std::to_string(ts->bytes) + " bytes at offset " +
                                  std::to_string(offset));
    }
    slot->buffer = std::move(buffer);
    slot->offset = offset;
  }

  void run(int group) override {
    check_group(group);
    const AxApi& api = ax_api();
    auto fill = [&](const std::vector<Bound>& bound, const std::vector<TensorSpec>& specs,
                    std::vector<AX_ENGINE_IO_BUFFER_T>& out) {
      for (size_t i = 0; i < bound.size(); ++i) {
        if (!bound[i].buffer) {
          throw std::invalid_argument(path_ + ": group " + std::to_string(group) + " tensor '" +
                                      specs[i].name + "' is not bound");
        }
        const auto* b = static_cast<const AxBuffer*>(bound[i].buffer.get());
        out[i] = AX_ENGINE_IO_BUFFER_T{};
        out[i].phyAddr = b->phy() + bound[i].offset;
        out[i].pVirAddr = b->vir() + bound[i].offset;
        out[i].nSize = static_cast<AX_U32>(specs[i].bytes);
      }
    };
    auto& in = io_buffers_in_[group];
    auto& out = io_buffers_out_[group];
    fill(inputs_[group], groups_[group].inputs, in);
    fill(outputs_[group], groups_[group].outputs, out);
    for (const auto& b : in) {
      ax_check(api.mflush(b.phyAddr, b.pVirAddr, b.nSize), "AX_SYS_MflushCache", path_);
    }
    AX_ENGINE_IO_T io{};
    io.pInputs = in.data();
    io.nInputSize = static_cast<AX_U32>(in.size());
    io.pOutputs = out.data();
    io.nOutputSize = static_cast<AX_U32>(out.size());
    ax_check(api.run_group_io_sync(handle_, context_, static_cast<AX_U32>(group), &io),
             "AX_ENGINE_RunGroupIOSync", path_ + " group " + std::to_string(group));
    for (const auto& b : out) {
      ax_check(api.minvalidate(b.phyAddr, b.pVirAddr, b.nSize), "AX_SYS_MinvalidateCache", path_);
    }
  }

 private:
  TensorSpec describe(const AX_ENGINE_IOMETA_T& m, AX_U32 group) {
    const std::string name = m.pName ? m.pName : "";
    std::vector<int64_t> shape(m.pShape, m.pShape + m.nShapeSize);
    TensorSpec t = make_tensor_spec(
        name, shape,
        from_ax(m.eDataType, path_ + " group " + std::to_string(group) + " '" + name + "'"));
    if (t.bytes != m.nSize) {
      throw ModelLoadError(path_ + ": group " + std::to_string(group) + " tensor '" + name +
                           "' reports " + std::to_string(m.nSize) + " bytes for " +
                           shape_string(shape));
    }
    return t;
  }
  void check_group(int group) const {
    if (group < 0 || static_cast<size_t>(group) >= groups_.size()) {
      throw std::invalid_argument(path_ + ": shape group " + std::to_string(group) +
                                  " is out of range");
    }
  }

  std::string path_;
  AX_ENGINE_HANDLE handle_ = nullptr;
  AX_ENGINE_CONTEXT_T context_ = nullptr;
  std::vector<GroupSpec> groups_;
  std::vector<std::vector<Bound>> inputs_;
  std::vector<std::vector<Bound>> outputs_;
  std::vector<std::vector<AX_ENGINE_IO_BUFFER_T>> io_buffers_in_;
  std::vector<std::vector<AX_ENGINE_IO_BUFFER_T>> io_buffers_out_;
};

class AxBackend final : public Backend {
 public:
  std::string name() const override { return "ax"; }
  std::unique_ptr<Model> load_model(const std::string& path, int placement) override {
    check_placement(*this, path, placement);
    return std::make_unique<AxModel>(path);
  }
  std::shared_ptr<Buffer> allocate(size_t bytes) override {
    return std::make_shared<AxBuffer>(bytes);
  }
};

}  // namespace

std::shared_ptr<Backend> make_ax_backend() {
  ax_api();
  static std::shared_ptr<Backend> backend = [] {
    std::atexit(vendor_blocks::free_all);  // CMM still held at exit: a process ending without close
    return std::make_shared<AxBackend>();
  }();
  return backend;
}

}  // namespace axllm::detail
