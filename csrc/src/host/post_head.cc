#include "host/post_head.h"

#include "host/decoder_layer.h"
#include "host/kernels.h"

namespace axllm::detail {
namespace {
enum Slot : size_t { kX = 0, kNorm = 1, kLogits = 2 };
}

PostHead::PostHead(const HostModelFile& f) {
  const auto& h = f.header();
  io_dtype_ = h.io_dtype;
  w_dtype_ = h.weight_dtype;
  hidden_ = h.hidden_size;
  vocab_ = h.vocab_size;
  eps_ = static_cast<float>(h.rms_norm_eps);
  norm_ = reinterpret_cast<const float*>(f.get("norm.weight", {DType::kFP32}, {hidden_}).data);
  lm_head_ = f.get("lm_head.weight", {w_dtype_}, {vocab_, hidden_}).data;
}

void PostHead::reserve(Workspace& ws) const {
  ws.floats(kX, static_cast<size_t>(hidden_));
  ws.floats(kNorm, static_cast<size_t>(hidden_));
  ws.floats(kLogits, static_cast<size_t>(vocab_));
}

void PostHead::run(const void* input, void* output, Workspace& ws, ThreadPool& pool) const {
  float* x = ws.floats(kX, static_cast<size_t>(hidden_));
  float* hn = ws.floats(kNorm, static_cast<size_t>(hidden_));
  float* logits = ws.floats(kLogits, static_cast<size_t>(vocab_));
  to_float(io_dtype_, input, x, static_cast<size_t>(hidden_));
  rms_norm(x, norm_, eps_, 1, hidden_, hn);
  const MatmulPart part{lm_head_, w_dtype_, hidden_, nullptr, vocab_, logits, vocab_};
  matmul(pool, hn, 1, hidden_, hidden_, &part, 1);
  from_float(io_dtype_, logits, output, static_cast<size_t>(vocab_));
}

}  // namespace axllm::detail
