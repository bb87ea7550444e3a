#pragma once
// The post model of a pulsar2-shaped build: final RMSNorm, then lm_head, on one hidden row.
#include <cstdint>

#include "axllm/dtype.h"
#include "host/host_model_file.h"
#include "host/workspace.h"
#include "util/thread_pool.h"

namespace axllm::detail {

class PostHead {
 public:
  // Validates and maps norm.weight [H] and lm_head.weight [V, H]. Throws ModelLoadError.
  explicit PostHead(const HostModelFile& file);
  // input [1, H] io dtype -> output [1, V] io dtype logits.
  void run(const void* input, void* output, Workspace& ws, ThreadPool& pool) const;
  // Grows `ws` to what run() needs.
  void reserve(Workspace& ws) const;

 private:
  DType io_dtype_;
  DType w_dtype_;
  int64_t hidden_, vocab_;
  float eps_;
  const float* norm_;
  const void* lm_head_;
};

}  // namespace axllm::detail
