#pragma once
// Options, results and metrics of one generation.
#include <cstdint>
#include <functional>
#include <vector>

#include "axllm/sampler.h"

namespace axllm {

enum class FinishReason : uint8_t {
  kNone,         // still running
  kStop,         // an EOS id was sampled (it is not returned as a token)
  kLength,       // max_new_tokens reached
  kCancelled,    // cancel() or stop(), or superseded by a newer generation on the same model
  kContextFull,  // the KV cache is full
};

const char* finish_reason_name(FinishReason r);

struct GenerationOptions {
  int32_t max_new_tokens = -1;   // < 0: until EOS or a full context
  std::vector<int32_t> eos_ids;  // any of them stops the generation
  bool reuse_kv = true;          // reuse the longest common prefix of the cached tokens
  SamplingParams sampling;
  // Called on the generating thread after each prefill chunk (or prefill decode step) with the
  // prompt tokens run so far and the number to run (the prompt minus the reused prefix). An
  // exception it throws ends the generation (finish reason cancelled) and propagates; the KV
  // cache keeps the chunks completed before it.
  std::function<void(int64_t done, int64_t total)> prefill_progress;
};

struct GenerationMetrics {
  int64_t prompt_tokens = 0;
  int64_t generated_tokens = 0;  // tokens returned (EOS excluded)
  int64_t cached_tokens = 0;     // prompt tokens whose K/V rows were reused from the cache
  int64_t prefilled_tokens = 0;  // prompt tokens run through the model (prompt - cached)
  double prefill_ms = 0;         // running the prompt through the model
  double ttft_ms = 0;            // start of the first step to the first token sampled
  double decode_ms = 0;          // first token to the last step
  double prefill_tokens_per_s() const { return prefill_ms > 0 ? prompt_tokens * 1e3 / prefill_ms : 0; }
  // Tokens after the first, per second of decoding (the first token's cost is in ttft_ms).
  double decode_tokens_per_s() const {
    return decode_ms > 0 && generated_tokens > 1 ? (generated_tokens - 1) * 1e3 / decode_ms : 0;
  }
};

// What one step produced: a token (or -1) and whether the generation has finished.
struct StepResult {
  int32_t token = -1;
  FinishReason finish = FinishReason::kNone;
  int32_t stop_token = -1;  // the EOS id sampled, with kStop
};

}  // namespace axllm
