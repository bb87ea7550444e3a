#pragma once
// One generation, pulled a step at a time, and what its steps return.
#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "axllm/generation_config.h"
#include "axllm/sampler.h"

namespace axllm {

class Llm;

enum class FinishReason : uint8_t {
  kNone,         // still running
  kStop,         // an EOS id was sampled (it is not returned as a token)
  kLength,       // max_new_tokens reached
  kCancelled,    // cancel() or stop(), or superseded by a newer generation on the same model
  kContextFull,  // the KV cache is full
};

const char* finish_reason_name(FinishReason r);

struct GenerationMetrics {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // tokens returned (EOS excluded)
  int64_t cached_tokens = 0;     // prompt tokens whose K/V rows were reused from the cache
  int64_t prefilled_tokens = 0;  // prompt tokens run through the model (prompt - cached)
  double prefill_ms = 0;         // first step's start to the end of the prefill
  double ttft_ms = 0;            // first step's start to the first token sampled
  double decode_ms = 0;          // first token to the last step
  double prefill_tokens_per_s() const {
    return prefill_ms > 0 ? prompt_tokens * 1e3 / prefill_ms : 0;
  }
  // Tokens after the first, per second of decoding (the first token's cost is in ttft_ms).
  double decode_tokens_per_s() const {
    return decode_ms > 0 && generated_tokens > 1 ? (generated_tokens - 1) * 1e3 / decode_ms : 0;
  }
};

// What one step did. A step that ran a prefill chunk has prefill_total > 0 (the prompt tokens to
// run, i.e. the prompt minus the reused prefix) and prefill_done (run so far, after this step). A
// step is exactly one of: progress (token -1, no finish: the prefill goes on), a token (the one
// sampled; the step that ends the prefill also reports its progress), or a finish (token -1, or
// the last token with kLength).
struct StepResult {
  int32_t token = -1;
  FinishReason finish = FinishReason::kNone;
  int32_t stop_token = -1;  // the EOS id sampled, with kStop
  int64_t prefill_done = 0;
  int64_t prefill_total = 0;
};

// One generation, pulled a step at a time: the first steps prefill the prompt one chunk each (P
// tokens through a prefill group, or up to P decode steps where no group fits); the step that
// runs the last chunk samples the first token; each later step decodes the previous token and
// samples the next. Nothing runs between next() calls, and no callback runs inside one.
class Generation {
 public:
  // Made by Llm::generate (the prompt already fitted, the sampling resolved).
  Generation(std::shared_ptr<Llm> llm, std::vector<int32_t> prompt, std::vector<int32_t> eos_ids,
             const GenerationConfig& config, const SamplingParams& sampling, bool reuse_kv,
             uint64_t serial, std::shared_ptr<std::atomic<bool>> cancel);

  // Runs one step. After a finish it keeps returning {-1, finish}. Throws BusyError when another
  // thread is running a step on the model, ClosedError after Llm::close(), EngineError on engine
  // failure (the generation then finishes as cancelled).
  StepResult next();
  // Requests cancellation; honoured between prefill chunks, layers and decode steps. Thread-safe.
  void cancel() { cancel_->store(true); }
  FinishReason finish_reason() const { return finish_; }
  const GenerationMetrics& metrics() const { return metrics_; }
  const std::vector<int32_t>& tokens() const { return generated_; }
  const std::vector<int32_t>& prompt() const { return prompt_; }

 private:
  StepResult start();
  StepResult prefill_step();
  StepResult finish(FinishReason reason, int32_t stop_token = -1);
  StepResult emit(int32_t token);
  bool is_eos(int32_t token) const;

  std::shared_ptr<Llm> llm_;
  std::vector<int32_t> prompt_;
  std::vector<int32_t> eos_ids_;
  int64_t max_new_tokens_;  // < 0: no limit
  bool reuse_kv_;
  Sampler sampler_;
  uint64_t serial_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::vector<int32_t> generated_;
  int32_t pending_ = -1;
  bool started_ = false;
  int64_t prefill_from_ = 0;  // prompt index where this generation's prefill began (reused prefix)
  int64_t prefill_next_ = 0;  // prompt index of the next token to prefill
  FinishReason finish_ = FinishReason::kNone;
  GenerationMetrics metrics_;
  double start_time_ = 0;
  double first_token_time_ = 0;
};

}  // namespace axllm
