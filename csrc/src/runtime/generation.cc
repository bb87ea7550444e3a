#include "axllm/generation.h"

#include <algorithm>
#include <chrono>

#include "axllm/llm.h"

namespace axllm {
namespace {
double now_ms() {
  return std::chrono::duration<double, std::milli>(
             std::chrono::steady_clock::now().time_since_epoch())
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
                       std::vector<int32_t> eos_ids, const GenerationConfig& config,
                       const SamplingParams& sampling, bool reuse_kv, uint64_t serial,
                       std::shared_ptr<std::atomic<bool>> cancel)
    : llm_(std::move(llm)),
      prompt_(std::move(prompt)),
      eos_ids_(std::move(eos_ids)),
      max_new_tokens_(config.max_new_tokens.value_or(-1)),
      reuse_kv_(reuse_kv),
      sampler_(sampling),
      serial_(serial),
      cancel_(std::move(cancel)) {
  metrics_.prompt_tokens = static_cast<int64_t>(prompt_.size());
  // Never more tokens than the context can hold, whatever max_new_tokens says.
  const int64_t cap = llm_->geometry().kv_len + 1;
  generated_.reserve(
      static_cast<size_t>(max_new_tokens_ > 0 ? std::min<int64_t>(max_new_tokens_, cap) : cap));
}

bool Generation::is_eos(int32_t token) const {
  return std::find(eos_ids_.begin(), eos_ids_.end(), token) != eos_ids_.end();
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
  if (max_new_tokens_ > 0 && metrics_.generated_tokens >= max_new_tokens_) {
    finish_ = FinishReason::kLength;
    return StepResult{token, FinishReason::kLength, -1};
  }
  return StepResult{token, FinishReason::kNone, -1};
}

StepResult Generation::start() {
  started_ = true;
  start_time_ = now_ms();
  const size_t keep = reuse_kv_ ? llm_->reusable_prefix(prompt_) : 0;
  llm_->kv_->rewind_to(static_cast<int64_t>(keep));
  llm_->pinned_ = std::min<int64_t>(llm_->pinned_, static_cast<int64_t>(keep));
  prefill_from_ = prefill_next_ = static_cast<int64_t>(keep);
  metrics_.cached_tokens = static_cast<int64_t>(keep);
  metrics_.prefilled_tokens = metrics_.prompt_tokens - static_cast<int64_t>(keep);
  return prefill_step();
}

StepResult Generation::prefill_step() {
  const std::span<const int32_t> rest =
      std::span<const int32_t>(prompt_).subspan(static_cast<size_t>(prefill_next_));
  const Llm::Chunk chunk = llm_->prefill_chunk(rest, *cancel_);
  prefill_next_ += chunk.consumed;
  if (chunk.cancelled) return finish(FinishReason::kCancelled);
  const int64_t total = metrics_.prompt_tokens - prefill_from_;
  const int64_t done = prefill_next_ - prefill_from_;
  if (prefill_next_ < metrics_.prompt_tokens) {
    StepResult progress;
    progress.prefill_done = done;
    progress.prefill_total = total;
    return progress;
  }
  metrics_.prefill_ms = now_ms() - start_time_;
  const int32_t t = sampler_.sample(llm_->logits(), prompt_, generated_);
  first_token_time_ = now_ms();
  metrics_.ttft_ms = first_token_time_ - start_time_;
  StepResult r = is_eos(t) ? finish(FinishReason::kStop, t) : emit(t);
  r.prefill_done = done;
  r.prefill_total = total;
  return r;
}

StepResult Generation::next() {
  auto lock = llm_->lock_state();
  if (finish_ != FinishReason::kNone) return StepResult{-1, finish_, -1};
  if (llm_->serial_.load() != serial_ || cancel_->load()) return finish(FinishReason::kCancelled);
  try {
    if (!started_) return start();
    if (prefill_next_ < metrics_.prompt_tokens) return prefill_step();
    if (llm_->kv_->size() >= llm_->geometry_.kv_len) return finish(FinishReason::kContextFull);
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
