#pragma once
// The engine interface: what every backend (the CPU host engine, the native AX engine, AXCL)
// provides. The runtime and the Python session speak only this interface.
#include <cstddef>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "axllm/tensor.h"

namespace axllm {

// Memory an engine can read and write. Not necessarily host visible: callers move bytes through
// write/read/copy_from only. Thread-compatible (callers serialize access).
class Buffer {
 public:
  virtual ~Buffer() = default;
  virtual size_t size() const = 0;
  // Copy `n` bytes from host memory to offset `offset`. Throws std::out_of_range past the end.
  virtual void write(size_t offset, const void* src, size_t n) = 0;
  // Copy `n` bytes at `offset` to host memory. Throws std::out_of_range past the end.
  virtual void read(size_t offset, void* dst, size_t n) const = 0;
  // Copy `n` bytes from `src` at `src_offset` to this buffer at `dst_offset`.
  virtual void copy_from(const Buffer& src, size_t src_offset, size_t dst_offset, size_t n) = 0;
  // Fill `n` bytes at `offset` with `value`.
  virtual void fill(size_t offset, unsigned char value, size_t n) = 0;
};

// One loaded model file: its shape groups, the buffers bound to their tensors, and runs.
class Model {
 public:
  virtual ~Model() = default;
  // The file this model was loaded from (for messages).
  virtual const std::string& path() const = 0;
  virtual const std::vector<GroupSpec>& groups() const = 0;
  // Bind `buffer` at `offset` as tensor `tensor` of `group`. The tensor is found by name, then
  // by name + "_<group>". Throws std::invalid_argument for an unknown group or tensor, or a
  // buffer smaller than offset + the tensor's bytes.
  virtual void bind(int group, std::string_view tensor, std::shared_ptr<Buffer> buffer,
                    size_t offset = 0) = 0;
  // Run `group` on its bound buffers. Throws std::invalid_argument if a tensor is unbound;
  // EngineError if the engine fails.
  virtual void run(int group) = 0;
};

// Creates models and the buffers they run on. Destroying the last reference to a Model or Buffer
// frees its engine and vendor memory at once, whether or not the Backend object is still alive.
class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Where models can run: 1 for engines with one memory (the host engine, a board's NPU), the
  // number of cards for AXCL. The caller decides which model runs where. Models in the same
  // placement share buffers without copies; a buffer lives where the first model it is bound to
  // runs (any other model reading it is given a copy per run).
  virtual int num_placements() const { return 1; }
  // Loads `path` to run in `placement` (0 <= placement < num_placements()). Throws
  // ModelLoadError naming `path` when it cannot be loaded, std::out_of_range for a placement
  // the backend does not have.
  virtual std::unique_ptr<Model> load_model(const std::string& path, int placement) = 0;
  virtual std::shared_ptr<Buffer> allocate(size_t bytes) = 0;
};

// Throws std::out_of_range naming `path` unless 0 <= placement < backend.num_placements().
void check_placement(const Backend& backend, const std::string& path, int placement);

// The process-wide host backend (the host engine), created on first use. Its thread count comes
// from AXLLM_NUM_THREADS, else the machine's hardware concurrency.
std::shared_ptr<Backend> host_backend();

// Finds the index of `name` in `specs`, trying `name` then `name + "_" + group`; -1 if absent.
int find_tensor(const std::vector<TensorSpec>& specs, std::string_view name, int group);

}  // namespace axllm
