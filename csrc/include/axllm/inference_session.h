#pragma once
// Host-side access to any engine model, tensor by tensor: the core of axllm.InferenceSession.
// Owns one buffer per tensor per group, validates every feed against the model's specs.
#include <atomic>
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "axllm/backend.h"

namespace axllm {

// A host array offered as an input (`data` read-only) or as an output destination.
struct HostTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  void* data;
  size_t bytes;
};

// Thread-safe: every call is serialized on one lock (a run holds it while the engine runs).
class InferenceSession {
 public:
  // Loads `path` through `backend` in `placement`. Throws ModelLoadError, std::out_of_range for
  // a placement the backend does not have.
  InferenceSession(std::shared_ptr<Backend> backend, const std::string& path, int placement = 0);

  // Frees the engine model and every buffer now (waiting for a run in progress). Idempotent.
  // Every other call except path() and closed() then throws ClosedError.
  void close();
  // Lock-free (does not wait for a run in progress).
  bool closed() const { return closed_.load(); }

  int num_groups() const;
  // Throws std::invalid_argument naming `shape_group` when out of range.
  GroupSpec group(int shape_group) const;
  const std::string& path() const { return path_; }

  // Validates a feed for `shape_group` (every input present once, names known, shapes and
  // dtypes exact) without running. Throws std::invalid_argument / TypeMismatch naming the tensor.
  void check_inputs(int shape_group, const std::vector<HostTensor>& inputs) const;
  // Index of output `name` in group `shape_group`; throws std::invalid_argument if unknown.
  int output_index(int shape_group, const std::string& name) const;

  // Copies `inputs` in, runs the group, copies the requested outputs (each `outputs[i]` sized for
  // the output it names) out.
  void run(int shape_group, const std::vector<HostTensor>& inputs,
           const std::vector<HostTensor>& outputs);

 private:
  // The open model; throws ClosedError naming the path after close(). Callers hold mutex_.
  Model& model() const;
  const GroupSpec& group_locked(int shape_group) const;
  void check_inputs_locked(int shape_group, const std::vector<HostTensor>& inputs) const;
  int output_index_locked(int shape_group, const std::string& name) const;
  void ensure_bound(int shape_group);

  std::shared_ptr<Backend> backend_;
  std::string path_;
  std::unique_ptr<Model> model_;
  std::vector<std::map<std::string, std::shared_ptr<Buffer>>> buffers_;
  std::vector<bool> bound_;
  mutable std::mutex mutex_;
  std::atomic<bool> closed_{false};
};

}  // namespace axllm
