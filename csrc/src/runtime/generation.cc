#include "axllm/generation.h"

#include <algorithm>
#include <chrono>

#include "axllm/errors.h"
#include "axllm/llm.h"

namespace axllm {
namespace {
double now_ms() {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

const char* finish_reason_name(FinishReason r) {
  switch (r) {
    case FinishReason::kNone: return "";
    case FinishReason::kStop: return "stop";
    case FinishReason::kLength: return "length";
    case FinishReason::kCancelled: return "cancelled";
    case FinishReason::kContextFull: return "context_full";
  }
  return "";
}

Generation::Generation(std::shared_ptr<Llm> llm, std::vector<int32_t> prompt,
                       GenerationOptions options, uint64_t serial,
                       std::shared_ptr<std::atomic<bool>> cancel)
    : llm_(std::move(llm)),
      prompt_(std::move(prompt)),
      options_(std::move(options)),
      sampler_(options_.sampling),
      serial_(serial),
      cancel_(std::move(cancel)) {
  metrics_.prompt_tokens = static_cast<int64_t>(prompt_.size());
  // Never more tokens than the context can hold, whatever max_new_tokens says.
  const int64_t cap = llm_->geometry().kv_len + 1;
  generated_.reserve(static_cast<size_t>(options_.max_new_tokens > 0 ? std::min<int64_t>(options_.max_new_tokens, cap) : cap));
}

bool Generation::is_eos(int32_t token) const {
  return std::find(options_.eos_ids.begin(), options_.eos_ids.end(), token) != options_.eos_ids.end();
}

StepResult Generation::finish(FinishReason reason, int32_t stop_token) {
  finish_ = reason;
  if (!generated_.empty()) metrics_.decode_ms = now_ms() - first_token_time_;
  return StepResult{-1, reason, stop_token};
}

StepResult Generation::emit(int32_t token) {
  generated_.push_back(token);
  pending_ = token;
  metrics_.generated_tokens = static_cast<int64_t>(generated_.size());
  metrics_.decode_ms = now_ms() - first_token_time_;
  if (options_.max_new_tokens > 0 && metrics_.generated_tokens >= options_.max_new_tokens) {
    finish_ = FinishReason::kLength;
    return StepResult{token, FinishReason::kLength, -1};
  }
  return StepResult{token, FinishReason::kNone, -1};
}

StepResult Generation::next() {
  Llm::StateLock lock(*llm_);
  if (finish_ != FinishReason::kNone) return StepResult{-1, finish_, -1};
  if (llm_->serial_.load() != serial_ || cancel_->load()) return finish(FinishReason::kCancelled);
  const ModelGeometry& g = llm_->geometry_;
  try {
    if (!started_) {
      started_ = true;
      const double t0 = now_ms();
      const int64_t n = static_cast<int64_t>(prompt_.size());
      if (n > g.kv_len) {
        finish_ = FinishReason::kCancelled;
        throw ContextOverflowError(n, g.kv_len, "the prompt has " + std::to_string(n) +
                                                    " tokens but the context holds " +
                                                    std::to_string(g.kv_len));
      }
      const size_t keep = options_.reuse_kv ? llm_->reusable_prefix(prompt_) : 0;
      llm_->kv_->rewind_to(static_cast<int64_t>(keep));
      llm_->pinned_ = std::min<int64_t>(llm_->pinned_, static_cast<int64_t>(keep));
      metrics_.cached_tokens = static_cast<int64_t>(keep);
      metrics_.prefilled_tokens = n - static_cast<int64_t>(keep);
      if (!llm_->prefill(std::span<const int32_t>(prompt_).subspan(keep), *cancel_, options_.prefill_progress)) {
        return finish(FinishReason::kCancelled);
      }
      metrics_.prefill_ms = now_ms() - t0;
      const int32_t t = sampler_.sample(llm_->logits(), prompt_, generated_);
      first_token_time_ = now_ms();
      metrics_.ttft_ms = first_token_time_ - t0;
      if (is_eos(t)) return finish(FinishReason::kStop, t);
      return emit(t);
    }
    if (llm_->kv_->size() >= g.kv_len) return finish(FinishReason::kContextFull);
    llm_->decode(pending_);
    const int32_t t = sampler_.sample(llm_->logits(), prompt_, generated_);
    if (is_eos(t)) return finish(FinishReason::kStop, t);
    return emit(t);
  } catch (...) {
    if (finish_ == FinishReason::kNone) finish_ = FinishReason::kCancelled;
    throw;
  }
}

}  // namespace axllm
