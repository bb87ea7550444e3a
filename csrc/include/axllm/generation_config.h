#pragma once
// GenerationConfig: what one generate/chat call asks for. This is the one definition of the
// generation options; the Python class axllm.GenerationConfig is this struct bound field by field,
// and the keyword arguments of LLM.generate/chat, the REPL's /set and the server's request fields
// are derived from its field list (kFieldNames). Range rules live in validate() only.
#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "axllm/sampler.h"

namespace axllm {

// What a prompt longer than the context does.
enum class OverflowPolicy : uint8_t {
  kError,            // ContextOverflowError(needed, available)
  kTruncateLeft,     // the oldest prompt tokens are dropped, leaving room to generate
  kDropOldestTurns,  // chat only: the oldest turns are dropped (done where the messages are)
};

const char* overflow_policy_name(OverflowPolicy p);
// Throws std::invalid_argument naming the accepted values.
OverflowPolicy parse_overflow_policy(std::string_view name);

// An unset (nullopt) sampling field means "the model's default": when no sampling field is set the
// model's own sampling applies (post_config.json, else generation_config.json, else greedy); when
// any is set, Hugging Face semantics apply with exactly the fields set (see resolve_sampling).
struct GenerationConfig {
  std::optional<int64_t> max_new_tokens;      // >= 1; unset: until EOS or a full context
  std::optional<float> temperature;           // >= 0; 0 is greedy
  std::optional<int32_t> top_k;               // >= 0; 0 keeps every token
  std::optional<float> top_p;                 // in (0, 1]
  std::optional<float> min_p;                 // in [0, 1]
  std::optional<float> repetition_penalty;    // > 0
  std::optional<float> presence_penalty;      // finite
  std::optional<float> frequency_penalty;     // finite
  std::optional<uint64_t> seed;               // any; unset: a random seed per generation
  std::vector<std::string> stop;              // at most kMaxStopStrings non-empty strings
  OverflowPolicy overflow = OverflowPolicy::kError;

  static constexpr size_t kMaxStopStrings = 16;
  // Every field, in declaration order (the binding, the REPL and the server follow this list).
  static constexpr std::array<std::string_view, 11> kFieldNames = {
      "max_new_tokens",   "temperature",       "top_k", "top_p", "min_p",   "repetition_penalty",
      "presence_penalty", "frequency_penalty", "seed",  "stop",  "overflow"};

  // Whether any sampling field (temperature .. frequency_penalty) is set.
  bool has_sampling() const;
  // Throws std::invalid_argument naming the first field out of range, e.g.
  // "top_p must be in (0, 1], got 1.5".
  void validate() const;
  bool operator==(const GenerationConfig&) const = default;
};

// The sampler parameters a generation runs with: `model_default` when `config` sets no sampling
// field, else Hugging Face semantics with the fields `config` sets (the others at their neutral
// values). A seed set in `config` applies in both cases.
SamplingParams resolve_sampling(const GenerationConfig& config,
                                const SamplingParams& model_default);

// How many prompt tokens a generation accepts under `config` with a context of `context` tokens:
// the whole context for kError; otherwise the context minus room to generate
// (min(max_new_tokens, or 256 when unset, context / 2)).
int64_t prompt_limit(const GenerationConfig& config, int64_t context);

// `prompt` made to fit the context per config.overflow: unchanged when it fits; its last
// prompt_limit() tokens with kTruncateLeft; otherwise ContextOverflowError(needed, available).
std::vector<int32_t> fit_prompt(std::vector<int32_t> prompt, const GenerationConfig& config,
                                int64_t context);

}  // namespace axllm
