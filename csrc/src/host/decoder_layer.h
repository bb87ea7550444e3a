#pragma once
// One decoder layer of a Qwen2/Llama-style model executed under the axmodel group contract:
// RMSNorm -> q/k/v (+bias) -> RoPE at `indices` -> grouped-query attention over
// [history rows ++ current rows] with the additive mask -> o_proj -> residual -> RMSNorm ->
// SiLU-gated MLP -> residual. fp32 accumulation throughout.
#include <cstdint>

#include "axllm/dtype.h"
#include "host/host_model_file.h"
#include "host/workspace.h"
#include "util/thread_pool.h"

namespace axllm::detail {

// The buffers of one group run, already resolved to host memory.
struct LayerRun {
  int64_t n_rows;          // rows of input/indices/mask/outputs: 1 (decode) or P (prefill)
  int64_t n_history;       // history rows visible through the mask (C for decode, H_g, or 0)
  int64_t mask_width;      // n_history + n_rows (decode: C + 1)
  const void* input;       // [n_rows, H] io dtype
  const uint32_t* indices; // [n_rows] absolute RoPE positions
  const void* mask;        // [n_rows, mask_width] io dtype, additive
  const void* k_cache;     // [n_history, D] io dtype (ignored when n_history == 0)
  const void* v_cache;
  void* k_out;             // [n_rows, D] io dtype
  void* v_out;
  void* output;            // [n_rows, H] io dtype
};

// A mask entry at or below this value blocks its column (bf16 -65536, fp16 -inf / -65504).
inline constexpr float kMaskBlocked = -65504.0f;

class DecoderLayer {
 public:
  // Validates and maps the layer's tensors. Throws ModelLoadError naming the file and tensor.
  explicit DecoderLayer(const HostModelFile& file);

  // Rows whose mask blocks every column are padding: their outputs are written as zeros, and
  // trailing padding rows are not computed at all.
  void run(const LayerRun& io, Workspace& ws, ThreadPool& pool) const;
  // Grows `ws` to what run() needs for up to `max_rows` rows and `max_width` mask columns, so
  // runs allocate nothing.
  void reserve(Workspace& ws, int64_t max_rows, int64_t max_width, int n_threads) const;

 private:
  struct Linear {
    const void* w = nullptr;
    const float* bias = nullptr;
    int64_t rows = 0;
    int64_t cols = 0;
  };
  Linear linear(const HostModelFile& f, const std::string& name, int64_t rows, int64_t cols) const;
  void attention(const LayerRun& io, int64_t n_active, const float* q, const float* k,
                 const float* v, float* out, Workspace& ws, ThreadPool& pool) const;

  DType io_dtype_;
  DType w_dtype_;
  int64_t hidden_, n_heads_, n_kv_heads_, head_dim_, ffn_;
  float eps_;
  float rope_scaling_;
  const float* ln1_;
  const float* ln2_;
  const float* inv_freq_;
  Linear q_, k_, v_, o_, gate_, up_, down_;
};

// x[r] <- rmsnorm(x[r]) * weight for `rows` rows of width `n`, written to `out`.
void rms_norm(const float* x, const float* weight, float eps, int64_t rows, int64_t n, float* out);

}  // namespace axllm::detail
