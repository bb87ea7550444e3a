#include "axcl/axcl_backend.h"

#include <pthread.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <sstream>
#include <thread>

#include "axcl/axcl_library.h"
#include "axllm/errors.h"
#include "axllm/log.h"
#include "util/buffer_range.h"
#include "util/vendor_blocks.h"

namespace axllm::detail {
namespace {

// Set once the exit hook has freed device memory: models still alive then are not unloaded
// (axclFinalize follows; the process is ending).
std::atomic<bool> g_exiting{false};

// One card. A worker thread sets the device, creates and keeps the card's context, and runs
// every AXCL call made for the card (call() marshals the work and waits for it). Never
// destroyed: exit and SIGTERM may still free memory through it.
class Device {
 public:
  Device(int ordinal, int32_t id) : ordinal_(ordinal), id_(id) {
    std::exception_ptr error;
    bool ready = false;
    thread_ = std::thread([this, &error, &ready] {
      sigset_t block;
      sigemptyset(&block);
      sigaddset(&block, SIGTERM);
      sigaddset(&block, SIGINT);
      pthread_sigmask(SIG_BLOCK, &block, nullptr);  // the process' handlers run elsewhere
      std::exception_ptr e;
      try {
        const AxclApi& api = axcl_api();
        const std::string what =
            "card " + std::to_string(ordinal_) + " (device id " + std::to_string(id_) + ")";
        axcl_check(api.set_device(id_), "axclrtSetDevice", what);
        axcl_check(api.create_context(&context_, id_), "axclrtCreateContext", what);
        axcl_check(api.set_current_context(context_), "axclrtSetCurrentContext", what);
        axcl_check(api.engine_init(AXCL_VNPU_DISABLE), "axclrtEngineInit", what);
      } catch (...) {
        e = std::current_exception();
      }
      {
        std::lock_guard<std::mutex> lock(mutex_);
        worker_ = std::this_thread::get_id();
        error = e;
        ready = true;
      }
      done_.notify_all();
      if (!e) loop();
    });
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return ready; });
    if (error) {
      lock.unlock();
      thread_.join();
      std::rethrow_exception(error);
    }
    thread_.detach();
  }
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;

  int ordinal() const { return ordinal_; }
  int32_t id() const { return id_; }
  axclrtContext context() const { return context_; }

  // Runs `f` on the worker and waits; rethrows what `f` threw. Inline on the worker itself.
  void call(const std::function<void()>& f) {
    if (std::this_thread::get_id() == worker_) {
      f();
      return;
    }
    Task task{&f, nullptr, false};
    std::unique_lock<std::mutex> lock(mutex_);
    tasks_.push_back(&task);
    ready_.notify_one();
    done_.wait(lock, [&] { return task.done; });
    if (task.error) std::rethrow_exception(task.error);
  }

 private:
  struct Task {
    const std::function<void()>* f;
    std::exception_ptr error;
    bool done;
  };
  void loop() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      ready_.wait(lock, [&] { return !tasks_.empty(); });
      Task* task = tasks_.front();
      tasks_.pop_front();
      lock.unlock();
      try {
        (*task->f)();
      } catch (...) {
        task->error = std::current_exception();
      }
      lock.lock();
      task->done = true;
      done_.notify_all();
    }
  }

  const int ordinal_;
  const int32_t id_;
  axclrtContext context_ = nullptr;
  std::thread thread_;
  std::thread::id worker_;
  std::mutex mutex_;
  std::condition_variable ready_;
  std::condition_variable done_;
  std::deque<Task*> tasks_;
};

// The card with `ordinal`, started on first use (process-wide).
Device& device(int ordinal) {
  static std::mutex mutex;
  static auto* devices = new std::map<int, Device*>();
  std::lock_guard<std::mutex> lock(mutex);
  if (auto it = devices->find(ordinal); it != devices->end()) return *it->second;
  const AxclApi& api = axcl_api();
  auto* d = new Device(ordinal, api.devices.at(static_cast<size_t>(ordinal)));
  (*devices)[ordinal] = d;
  return *d;
}

// Frees a device block recorded in the vendor block table. On a normal thread (close, exit)
// through its card's worker; from the signal handler directly, on the thread that took the
// signal after taking the card's context (the workers may be busy, and block the signals).
void free_device_memory(uint64_t ptr, void* device, bool in_signal) {
  Device* dev = static_cast<Device*>(device);
  void* p = reinterpret_cast<void*>(static_cast<uintptr_t>(ptr));
  if (in_signal) {
    const AxclApi& api = axcl_api();
    api.set_current_context(dev->context());
    api.free(p);
    return;
  }
  try {
    dev->call([p] { axcl_check(axcl_api().free(p), "axclrtFree", "freeing device memory"); });
  } catch (const std::exception& e) {
    log(LogLevel::kWarning, std::string("axcl backend: ") + e.what());
  }
}

// At exit, before axclFinalize: every block still live (a process ending without close).
void free_at_exit() {
  g_exiting.store(true);
  vendor_blocks::free_all();
}

// Device memory, placed on the card of the first model it is bound to (so each layer's K/V
// buffers and the post model's logits stay on their model's card), or on the default card when
// it is first written, read or filled before any bind.
class AxclBuffer final : public Buffer {
 public:
  AxclBuffer(Device& fallback, size_t bytes) : fallback_(&fallback), size_(bytes) {}
  // Frees the device block now, unless exit or a signal already did.
  ~AxclBuffer() override {
    if (!ptr_ || !vendor_blocks::claim(slot_)) return;
    free_device_memory(reinterpret_cast<uintptr_t>(ptr_), dev_, false);
    vendor_blocks::release(slot_);
  }
  AxclBuffer(const AxclBuffer&) = delete;
  AxclBuffer& operator=(const AxclBuffer&) = delete;

  size_t size() const override { return size_; }
  void write(size_t offset, const void* src, size_t n) override {
    check_buffer_range("device buffer access", offset, n, size_);
    uint8_t* dst = place(*fallback_) + offset;
    if (n == 0) return;
    dev_->call([&] {
      axcl_check(axcl_api().memcpy(dst, src, n, AXCL_MEMCPY_HOST_TO_DEVICE), "axclrtMemcpy",
                 "host to device");
    });
  }
  void read(size_t offset, void* dst, size_t n) const override {
    check_buffer_range("device buffer access", offset, n, size_);
    const uint8_t* src = const_cast<AxclBuffer*>(this)->place(*fallback_) + offset;
    if (n == 0) return;
    dev_->call([&] {
      axcl_check(axcl_api().memcpy(dst, src, n, AXCL_MEMCPY_DEVICE_TO_HOST), "axclrtMemcpy",
                 "device to host");
    });
  }
  void copy_from(const Buffer& src, size_t src_offset, size_t dst_offset, size_t n) override {
    check_buffer_range("device buffer access", dst_offset, n, size_);
    uint8_t* dst = place(*fallback_) + dst_offset;
    const auto* s = dynamic_cast<const AxclBuffer*>(&src);
    if (s && s->ptr_ && s->dev_ == dev_) {
      check_buffer_range("device buffer access", src_offset, n, s->size_);
      const uint8_t* from = s->ptr_ + src_offset;
      if (n == 0) return;
      dev_->call([&] {
        axcl_check(axcl_api().memcpy(dst, from, n, AXCL_MEMCPY_DEVICE_TO_DEVICE), "axclrtMemcpy",
                   "device to device");
      });
      return;
    }
    if (host_.size() < n) host_.resize(n);  // another card or engine: through the host
    src.read(src_offset, host_.data(), n);
    write(dst_offset, host_.data(), n);
  }
  void fill(size_t offset, unsigned char value, size_t n) override {
    check_buffer_range("device buffer access", offset, n, size_);
    uint8_t* dst = place(*fallback_) + offset;
    if (n == 0) return;
    dev_->call([&] {
      axcl_check(axcl_api().memset(dst, value, n), "axclrtMemset", "filling device memory");
    });
  }

  // The device pointer, allocating (zeroed) on `dev` if not placed yet.
  uint8_t* place(Device& dev) {
    if (ptr_) return ptr_;
    void* p = nullptr;
    const size_t bytes = std::max<size_t>(size_, 1);
    dev.call([&] {
      const AxclApi& api = axcl_api();
      axcl_check(api.malloc(&p, bytes, AXCL_MEM_MALLOC_HUGE_FIRST), "axclrtMalloc",
                 "allocating " + std::to_string(bytes) + " bytes on card " +
                     std::to_string(dev.ordinal()));
      const int rc = api.memset(p, 0, bytes);
      if (rc != 0) api.free(p);
      axcl_check(rc, "axclrtMemset", "zeroing new device memory");
    });
    ptr_ = static_cast<uint8_t*>(p);
    dev_ = &dev;
    slot_ = vendor_blocks::record(free_device_memory, reinterpret_cast<uintptr_t>(p), &dev);
    return ptr_;
  }
  Device* device() const { return dev_; }

 private:
  Device* fallback_;
  Device* dev_ = nullptr;
  uint8_t* ptr_ = nullptr;
  size_t size_;
  int slot_ = -1;              // in the vendor block table
  std::vector<uint8_t> host_;  // staging for copies from another card, kept between calls
};

DType from_axcl(axclrtEngineDataType t, const std::string& where) {
  switch (t) {
    case AXCL_DATA_TYPE_BF16: return DType::kBF16;
    case AXCL_DATA_TYPE_FP16: return DType::kFP16;
    case AXCL_DATA_TYPE_FP32: return DType::kFP32;
    case AXCL_DATA_TYPE_UINT32: return DType::kUInt32;
    case AXCL_DATA_TYPE_INT32: return DType::kInt32;
    case AXCL_DATA_TYPE_UINT8: return DType::kUInt8;
    case AXCL_DATA_TYPE_INT8: return DType::kInt8;
    default:
      throw ModelLoadError(where + ": tensor data type " + std::to_string(static_cast<int>(t)) +
                           " is not supported");
  }
}

// A tensor's binding: the buffer and offset the caller gave, and for a buffer on another card
// (or another engine's) a device-local staging buffer plus a host bounce area, both kept across
// runs so nothing is allocated per token.
struct Slot {
  std::shared_ptr<Buffer> buffer;
  size_t offset = 0;
  std::unique_ptr<AxclBuffer> staging;
  std::vector<uint8_t> host;
  bool staged = false;
};

class AxclModel final : public Model {
 public:
  AxclModel(Device& dev, const std::string& path) : dev_(dev), path_(path) {
    if (!std::filesystem::is_regular_file(path)) throw ModelLoadError(path + ": cannot open");
    dev_.call([&] { load(); });
    inputs_.resize(groups_.size());
    outputs_.resize(groups_.size());
    for (size_t g = 0; g < groups_.size(); ++g) {
      inputs_[g].resize(groups_[g].inputs.size());
      outputs_[g].resize(groups_[g].outputs.size());
    }
    log(LogLevel::kDebug, "axcl backend: " + path + " on card " + std::to_string(dev.ordinal()));
  }
  ~AxclModel() override {
    if (g_exiting.load()) return;
    try {
      dev_.call([&] { release(); });
    } catch (...) {
    }
  }

  Device& device() const { return dev_; }
  const std::string& path() const override { return path_; }
  const std::vector<GroupSpec>& groups() const override { return groups_; }

  void bind(int group, std::string_view tensor, std::shared_ptr<Buffer> buffer,
            size_t offset) override {
    check_group(group);
    if (!buffer)
      throw std::invalid_argument(path_ + ": tensor '" + std::string(tensor) + "': null buffer");
    const GroupSpec& spec = groups_[group];
    bool is_input = true;
    int i = find_tensor(spec.inputs, tensor, group);
    if (i < 0) {
      is_input = false;
      i = find_tensor(spec.outputs, tensor, group);
    }
    if (i < 0) {
      throw std::invalid_argument(path_ + ": group " + std::to_string(group) +
                                  " has no tensor named '" + std::string(tensor) + "'");
    }
    const TensorSpec& ts = is_input ? spec.inputs[i] : spec.outputs[i];
    Slot& slot = is_input ? inputs_[group][i] : outputs_[group][i];
    if (offset > buffer->size() || buffer->size() - offset < ts.bytes) {
      throw std::invalid_argument(path_ + ": tensor '" + ts.name + "' needs " +
                                  std::to_string(ts.bytes) + " bytes at offset " +
                                  std::to_string(offset));
    }
    uint8_t* address = nullptr;
    auto* local = dynamic_cast<AxclBuffer*>(buffer.get());
    if (local) address = local->place(dev_);  // first bind places the buffer on this card
    const bool staged = !local || local->device() != &dev_;
    if (staged) {
      if (!slot.staging) {
        slot.staging = std::make_unique<AxclBuffer>(dev_, ts.bytes);
        slot.host.resize(ts.bytes);
      }
      address = slot.staging->place(dev_);
    } else {
      address += offset;
    }
    const uint64_t bytes = ts.bytes;
    dev_.call([&] {
      const AxclApi& api = axcl_api();
      if (is_input) {
        axcl_check(api.set_input(ios_[group], static_cast<uint32_t>(i), address, bytes),
                   "axclrtEngineSetInputBufferByIndex", path_ + " '" + ts.name + "'");
      } else {
        axcl_check(api.set_output(ios_[group], static_cast<uint32_t>(i), address, bytes),
                   "axclrtEngineSetOutputBufferByIndex", path_ + " '" + ts.name + "'");
      }
    });
    slot.buffer = std::move(buffer);
    slot.offset = offset;
    slot.staged = staged;
  }

  void run(int group) override {
    check_group(group);
    const GroupSpec& spec = groups_[group];
    for (size_t i = 0; i < inputs_[group].size(); ++i) {
      Slot& s = inputs_[group][i];
      if (!s.buffer) unbound(group, spec.inputs[i]);
      if (s.staged) {  // another card's buffer: D2H there, H2D here
        s.buffer->read(s.offset, s.host.data(), s.host.size());
        s.staging->write(0, s.host.data(), s.host.size());
      }
    }
    for (size_t i = 0; i < outputs_[group].size(); ++i) {
      if (!outputs_[group][i].buffer) unbound(group, spec.outputs[i]);
    }
    dev_.call([&] {
      axcl_check(
          axcl_api().execute(model_id_, context_id_, static_cast<uint32_t>(group), ios_[group]),
          "axclrtEngineExecute", path_ + " group " + std::to_string(group));
    });
    for (Slot& s : outputs_[group]) {
      if (s.staged) {
        s.staging->read(0, s.host.data(), s.host.size());
        s.buffer->write(s.offset, s.host.data(), s.host.size());
      }
    }
  }

 private:
  // On the worker.
  void load() {
    const AxclApi& api = axcl_api();
    axcl_check(api.load_from_file(path_.c_str(), &model_id_), "axclrtEngineLoadFromFile", path_);
    loaded_ = true;
    try {
      axcl_check(api.engine_create_context(model_id_, &context_id_), "axclrtEngineCreateContext",
                 path_);
      axcl_check(api.get_io_info(model_id_, &info_), "axclrtEngineGetIOInfo", path_);
      int32_t count = 0;
      axcl_check(api.shape_groups_count(info_, &count), "axclrtEngineGetShapeGroupsCount", path_);
      const uint32_t n_in = api.num_inputs(info_);
      const uint32_t n_out = api.num_outputs(info_);
      for (int32_t g = 0; g < count; ++g) {
        GroupSpec spec;
        for (uint32_t i = 0; i < n_in; ++i)
          spec.inputs.push_back(describe(true, static_cast<uint32_t>(g), i));
        for (uint32_t i = 0; i < n_out; ++i)
          spec.outputs.push_back(describe(false, static_cast<uint32_t>(g), i));
        groups_.push_back(std::move(spec));
        axclrtEngineIO io = nullptr;
        axcl_check(api.create_io(info_, &io), "axclrtEngineCreateIO", path_);
        ios_.push_back(io);
      }
    } catch (...) {
      release();
      throw;
    }
  }
  void release() {
    const AxclApi& api = axcl_api();
    for (axclrtEngineIO io : ios_) api.destroy_io(io);
    ios_.clear();
    if (info_) api.destroy_io_info(info_);
    info_ = nullptr;
    if (loaded_) api.unload(model_id_);
    loaded_ = false;
  }
  TensorSpec describe(bool input, uint32_t group, uint32_t index) {
    const AxclApi& api = axcl_api();
    const char* fn = input ? "axclrtEngineGetInputDims" : "axclrtEngineGetOutputDims";
    const char* raw = input ? api.input_name(info_, index) : api.output_name(info_, index);
    const std::string name = raw ? raw : "";
    const std::string where = path_ + " group " + std::to_string(group) + " '" + name + "'";
    axclrtEngineIODims dims{};
    axcl_check(input ? api.input_dims(info_, group, index, &dims)
                     : api.output_dims(info_, group, index, &dims),
               fn, where);
    if (dims.dimCount < 0 || dims.dimCount > AXCLRT_ENGINE_MAX_DIM_CNT) {
      throw ModelLoadError(where + ": rank " + std::to_string(dims.dimCount) + " is out of range");
    }
    std::vector<int64_t> shape(dims.dims, dims.dims + dims.dimCount);
    axclrtEngineDataType type = AXCL_DATA_TYPE_NONE;
    axcl_check(input ? api.input_dtype(info_, index, &type) : api.output_dtype(info_, index, &type),
               input ? "axclrtEngineGetInputDataType" : "axclrtEngineGetOutputDataType", where);
    TensorSpec t = make_tensor_spec(name, shape, from_axcl(type, where));
    const uint64_t size =
        input ? api.input_size(info_, group, index) : api.output_size(info_, group, index);
    if (t.bytes != size) {
      throw ModelLoadError(where + ": reports " + std::to_string(size) + " bytes for " +
                           dtype_name(t.dtype) + shape_string(shape));
    }
    return t;
  }
  void check_group(int group) const {
    if (group < 0 || static_cast<size_t>(group) >= groups_.size()) {
      throw std::invalid_argument(path_ + ": shape group " + std::to_string(group) +
                                  " is out of range");
    }
  }
  [[noreturn]] void unbound(int group, const TensorSpec& t) const {
    throw std::invalid_argument(path_ + ": group " + std::to_string(group) + " tensor '" + t.name +
                                "' is not bound");
  }

  Device& dev_;
  std::string path_;
  uint64_t model_id_ = 0;
  uint64_t context_id_ = 0;
  bool loaded_ = false;
  axclrtEngineIOInfo info_ = nullptr;
  std::vector<axclrtEngineIO> ios_;
  std::vector<GroupSpec> groups_;
  std::vector<std::vector<Slot>> inputs_;
  std::vector<std::vector<Slot>> outputs_;
};

class AxclBackend final : public Backend {
 public:
  explicit AxclBackend(std::vector<Device*> devices) : devices_(std::move(devices)) {}
  std::string name() const override { return "axcl"; }
  int num_placements() const override { return static_cast<int>(devices_.size()); }
  std::unique_ptr<Model> load_model(const std::string& path, int placement) override {
    check_placement(*this, path, placement);
    return std::make_unique<AxclModel>(*devices_[static_cast<size_t>(placement)], path);
  }
  std::shared_ptr<Buffer> allocate(size_t bytes) override {
    return std::make_shared<AxclBuffer>(*devices_[0], bytes);
  }

 private:
  std::vector<Device*> devices_;
};

std::vector<int> devices_from_env() {
  std::vector<int> out;
  const char* env = std::getenv("AXLLM_DEVICES");
  if (!env || !*env) return out;
  std::stringstream ss(env);
  std::string item;
  while (std::getline(ss, item, ',')) {
    if (item.empty()) continue;
    try {
      size_t used = 0;
      out.push_back(std::stoi(item, &used));
      if (used != item.size()) throw std::invalid_argument(item);
    } catch (const std::exception&) {
      throw std::invalid_argument(std::string("AXLLM_DEVICES='") + env +
                                  "': expected card numbers such as 0,1");
    }
  }
  return out;
}

}  // namespace

std::shared_ptr<Backend> make_axcl_backend(const std::vector<int>& requested) {
  const AxclApi& api = axcl_api();
  if (api.devices.empty()) {
    throw EngineError("axclrtGetDeviceList", 0,
                      "libaxcl_rt reports no AXCL card (is the card's driver loaded?)");
  }
  std::vector<int> ordinals = requested.empty() ? devices_from_env() : requested;
  if (ordinals.empty()) ordinals.push_back(0);
  std::set<int> seen;
  for (int o : ordinals) {
    if (o < 0 || static_cast<size_t>(o) >= api.devices.size()) {
      throw std::invalid_argument("AXCL card " + std::to_string(o) + " does not exist (" +
                                  std::to_string(api.devices.size()) + " found: 0.." +
                                  std::to_string(api.devices.size() - 1) + ")");
    }
    if (!seen.insert(o).second)
      throw std::invalid_argument("AXCL card " + std::to_string(o) + " is listed twice");
  }
  std::vector<Device*> devices;
  for (int o : ordinals) devices.push_back(&device(o));
  axcl_at_exit(free_at_exit);
  return std::make_shared<AxclBackend>(std::move(devices));
}

}  // namespace axllm::detail
