#include "host/host_backend.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <new>
#include <optional>
#include <stdexcept>

#include "axllm/errors.h"
#include "axllm/host_engine.h"
#include "host/decoder_layer.h"
#include "host/host_model_file.h"
#include "host/kernels.h"
#include "host/post_head.h"
#include "util/buffer_range.h"
#include "util/memory_bandwidth.h"

namespace axllm {

int find_tensor(const std::vector<TensorSpec>& specs, std::string_view name, int group) {
  for (size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].name == name) return static_cast<int>(i);
  }
  const std::string suffixed = std::string(name) + "_" + std::to_string(group);
  for (size_t i = 0; i < specs.size(); ++i) {
    if (specs[i].name == suffixed) return static_cast<int>(i);
  }
  return -1;
}

void check_placement(const Backend& backend, const std::string& path, int placement) {
  const int n = backend.num_placements();
  if (placement < 0 || placement >= n) {
    throw std::out_of_range(path + ": placement " + std::to_string(placement) +
                            " does not exist (the " + backend.name() + " backend has " +
                            std::to_string(n) + ")");
  }
}

namespace detail {
namespace {

constexpr size_t kBufferAlignment = 64;

class HostBuffer final : public Buffer {
 public:
  explicit HostBuffer(size_t bytes) : size_(bytes) {
    const size_t alloc =
        (std::max<size_t>(bytes, 1) + kBufferAlignment - 1) / kBufferAlignment * kBufferAlignment;
    data_ = static_cast<uint8_t*>(std::aligned_alloc(kBufferAlignment, alloc));
    if (!data_) throw std::bad_alloc();
    std::memset(data_, 0, alloc);
  }
  ~HostBuffer() override { std::free(data_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  size_t size() const override { return size_; }
  void write(size_t offset, const void* src, size_t n) override {
    check(offset, n, "host buffer write");
    std::memcpy(data_ + offset, src, n);
  }
  void read(size_t offset, void* dst, size_t n) const override {
    check(offset, n, "host buffer read");
    std::memcpy(dst, data_ + offset, n);
  }
  void copy_from(const Buffer& src, size_t src_offset, size_t dst_offset, size_t n) override {
    check(dst_offset, n, "host buffer copy_from");
    if (const auto* s = dynamic_cast<const HostBuffer*>(&src)) {
      s->check(src_offset, n, "host buffer copy_from (source)");
      std::memmove(data_ + dst_offset, s->data_ + src_offset, n);
    } else {
      src.read(src_offset, data_ + dst_offset, n);
    }
  }
  void fill(size_t offset, unsigned char value, size_t n) override {
    check(offset, n, "host buffer fill");
    std::memset(data_ + offset, value, n);
  }
  uint8_t* data() { return data_; }

 private:
  void check(size_t offset, size_t n, const char* what) const {
    check_buffer_range(what, offset, n, size_);
  }
  uint8_t* data_;
  size_t size_;
};

struct Binding {
  std::shared_ptr<Buffer> buffer;
  size_t offset = 0;
};

class HostModel final : public Model {
 public:
  HostModel(const std::string& path, std::shared_ptr<HostCompute> compute)
      : file_(path), compute_(std::move(compute)) {
    groups_ = host_model_groups(file_.header());
    if (file_.header().kind == "layer") {
      layer_.emplace(file_);
      int64_t rows = 1;
      int64_t width = 1;
      for (const auto& g : groups_) {
        const TensorSpec& m = g.inputs[find_tensor(g.inputs, "mask", 0)];
        rows = std::max(rows, m.shape[1]);
        width = std::max(width, m.shape[2]);
      }
      std::lock_guard<std::mutex> lock(compute_->mutex);
      layer_->reserve(compute_->workspace, rows, width, compute_->pool.size());
    } else {
      post_.emplace(file_);
      std::lock_guard<std::mutex> lock(compute_->mutex);
      post_->reserve(compute_->workspace);
    }
    bindings_.resize(groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) {
      bindings_[g].inputs.resize(groups_[g].inputs.size());
      bindings_[g].outputs.resize(groups_[g].outputs.size());
    }
  }

  const std::string& path() const override { return file_.path(); }
  const std::vector<GroupSpec>& groups() const override { return groups_; }

  void bind(int group, std::string_view tensor, std::shared_ptr<Buffer> buffer,
            size_t offset) override {
    check_group(group);
    if (!dynamic_cast<HostBuffer*>(buffer.get())) {
      throw std::invalid_argument(path() + ": group " + std::to_string(group) + " tensor '" +
                                  std::string(tensor) +
                                  "': buffer was not made by the host backend");
    }
    const GroupSpec& spec = groups_[group];
    int i = find_tensor(spec.inputs, tensor, group);
    const TensorSpec* ts = nullptr;
    Binding* slot = nullptr;
    if (i >= 0) {
      ts = &spec.inputs[i];
      slot = &bindings_[group].inputs[i];
    } else if ((i = find_tensor(spec.outputs, tensor, group)) >= 0) {
      ts = &spec.outputs[i];
      slot = &bindings_[group].outputs[i];
    } else {
      throw std::invalid_argument(path() + ": group " + std::to_string(group) +
                                  " has no tensor named '" + std::string(tensor) + "'");
    }
    if (offset > buffer->size() || buffer->size() - offset < ts->bytes) {
      throw std::invalid_argument(path() + ": group " + std::to_string(group) + " tensor '" +
                                  ts->name + "' needs " + std::to_string(ts->bytes) +
                                  " bytes at offset " + std::to_string(offset) +
                                  " but the buffer has " + std::to_string(buffer->size()));
    }
    slot->buffer = std::move(buffer);
    slot->offset = offset;
  }

  void run(int group) override {
    check_group(group);
    std::lock_guard<std::mutex> lock(compute_->mutex);
    if (post_) {
      const void* input = in(group, "input");
      void* output = out(group, "output");
      if (compute_->compute) post_->run(input, output, compute_->workspace, compute_->pool);
      return;
    }
    const GroupSpec& spec = groups_[group];
    const TensorSpec& mask = spec.inputs[find_tensor(spec.inputs, "mask", group)];
    LayerRun io{};
    io.n_rows = spec.inputs[find_tensor(spec.inputs, "indices", group)].shape[1];
    io.mask_width = mask.shape[2];
    io.n_history = io.mask_width - io.n_rows;
    io.input = in(group, "input");
    io.indices = static_cast<const uint32_t*>(in(group, "indices"));
    io.mask = in(group, "mask");
    io.k_cache = in(group, "K_cache");
    io.v_cache = in(group, "V_cache");
    io.k_out = out(group, "K_cache_out");
    io.v_out = out(group, "V_cache_out");
    io.output = out(group, "output");
    if (compute_->compute) layer_->run(io, compute_->workspace, compute_->pool);
  }

 private:
  struct GroupBindings {
    std::vector<Binding> inputs;
    std::vector<Binding> outputs;
  };

  void check_group(int group) const {
    if (group < 0 || static_cast<size_t>(group) >= groups_.size()) {
      throw std::invalid_argument(path() + ": shape group " + std::to_string(group) +
                                  " is out of range (the model has " +
                                  std::to_string(groups_.size()) + " groups)");
    }
  }

  uint8_t* resolve(const Binding& b, const TensorSpec& ts, int group) const {
    if (!b.buffer) {
      throw std::invalid_argument(path() + ": group " + std::to_string(group) + " tensor '" +
                                  ts.name + "' is not bound");
    }
    return static_cast<HostBuffer*>(b.buffer.get())->data() + b.offset;
  }
  const void* in(int group, const char* name) const {
    const int i = find_tensor(groups_[group].inputs, name, group);
    return resolve(bindings_[group].inputs[i], groups_[group].inputs[i], group);
  }
  void* out(int group, const char* name) const {
    const int i = find_tensor(groups_[group].outputs, name, group);
    return resolve(bindings_[group].outputs[i], groups_[group].outputs[i], group);
  }

  HostModelFile file_;
  std::shared_ptr<HostCompute> compute_;
  std::vector<GroupSpec> groups_;
  std::vector<GroupBindings> bindings_;
  std::optional<DecoderLayer> layer_;
  std::optional<PostHead> post_;
};

class HostBackend final : public Backend {
 public:
  HostBackend(int n_threads, bool compute)
      : compute_(std::make_shared<HostCompute>(n_threads, compute)) {}
  std::string name() const override { return compute_->compute ? "host" : "host-nocompute"; }
  std::unique_ptr<Model> load_model(const std::string& path, int placement) override {
    check_placement(*this, path, placement);
    return std::make_unique<HostModel>(path, compute_);
  }
  std::shared_ptr<Buffer> allocate(size_t bytes) override {
    return std::make_shared<HostBuffer>(bytes);
  }

 private:
  std::shared_ptr<HostCompute> compute_;
};

}  // namespace

std::vector<GroupSpec> host_model_groups(const HostModelHeader& h) {
  const DType io = h.io_dtype;
  std::vector<GroupSpec> groups;
  if (h.kind == "post") {
    GroupSpec g;
    g.inputs.push_back(make_tensor_spec("input", {1, 1, h.hidden_size}, io));
    g.outputs.push_back(make_tensor_spec("output", {1, 1, h.vocab_size}, io));
    groups.push_back(std::move(g));
    return groups;
  }
  const int64_t H = h.hidden_size;
  const int64_t D = h.num_kv_heads * h.head_dim;
  const int64_t C = h.kv_cache_len;
  const int64_t P = h.prefill_len;
  auto group = [&](int64_t rows, int64_t history, int64_t cache_rows) {
    GroupSpec g;
    g.inputs.push_back(make_tensor_spec("K_cache", {1, cache_rows, D}, io));
    g.inputs.push_back(make_tensor_spec("V_cache", {1, cache_rows, D}, io));
    g.inputs.push_back(make_tensor_spec("indices", {1, rows}, DType::kUInt32));
    g.inputs.push_back(make_tensor_spec("input", {1, rows, H}, io));
    g.inputs.push_back(make_tensor_spec("mask", {1, rows, history + rows}, io));
    g.outputs.push_back(make_tensor_spec("K_cache_out", {1, rows, D}, io));
    g.outputs.push_back(make_tensor_spec("V_cache_out", {1, rows, D}, io));
    g.outputs.push_back(make_tensor_spec("output", {1, rows, H}, io));
    return g;
  };
  groups.push_back(group(1, C, C));
  groups.push_back(group(P, 0, 1));
  for (int64_t hist : h.history_lens) groups.push_back(group(P, hist, hist));
  return groups;
}

std::shared_ptr<Backend> make_host_backend(int n_threads, bool compute) {
  return std::make_shared<HostBackend>(n_threads, compute);
}

}  // namespace detail

std::shared_ptr<Backend> host_backend() {
  static std::shared_ptr<Backend> backend =
      detail::make_host_backend(detail::default_thread_count(), true);
  return backend;
}

namespace host_engine {

std::string kernel_name() { return detail::kernel_name(); }

bool set_kernel(const std::string& name) { return detail::set_kernel(name.c_str()); }

int thread_count() { return detail::default_thread_count(); }

double measure_read_bandwidth(size_t bytes, int repeats, int threads) {
  return detail::measure_read_bandwidth(bytes, repeats, threads > 0 ? threads : thread_count());
}

}  // namespace host_engine

}  // namespace axllm
