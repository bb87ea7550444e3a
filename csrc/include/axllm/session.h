#pragma once
// Host-side access to any engine model, tensor by tensor: the core of axllm.InferenceSession.
// Owns one buffer per tensor per group, validates every feed against the model's specs.
#include <cstddef>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "axllm/engine.h"

namespace axllm {

// A host array offered as an input (`data` read-only) or as an output destination.
struct HostTensor {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  void* data;
  size_t bytes;
};

class Session {
 public:
  // Loads `path` through `backend`. Throws ModelLoadError.
  Session(std::shared_ptr<Backend> backend, const std::string& path);

  int num_groups() const;
  // Throws std::invalid_argument naming `shape_group` when out of range.
  const GroupSpec& group(int shape_group) const;
  const std::string& path() const;

  // Validates a feed for `shape_group` (every input present once, names known, shapes and
  // dtypes exact) without running. Throws std::invalid_argument / TypeMismatch naming the tensor.
  void check_inputs(int shape_group, const std::vector<HostTensor>& inputs) const;
  // Index of output `name` in group `shape_group`; throws std::invalid_argument if unknown.
  int output_index(int shape_group, const std::string& name) const;

  // Copies `inputs` in, runs the group, copies the requested outputs (each `outputs[i]` sized for
  // the output it names) out. Thread-safe: concurrent runs on one session are serialized.
  void run(int shape_group, const std::vector<HostTensor>& inputs,
           const std::vector<HostTensor>& outputs);

 private:
  void ensure_bound(int shape_group);

  std::shared_ptr<Backend> backend_;
  std::unique_ptr<Model> model_;
  std::vector<std::map<std::string, std::shared_ptr<Buffer>>> buffers_;
  std::vector<bool> bound_;
  std::mutex run_mutex_;
};

}  // namespace axllm
