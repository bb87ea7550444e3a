#include "axllm/generation_config.h"

#include <algorithm>
#include <stdexcept>

#include "axllm/errors.h"

namespace axllm {

const char* overflow_policy_name(OverflowPolicy p) {
  switch (p) {
    case OverflowPolicy::kError: return "error";
    case OverflowPolicy::kTruncateLeft: return "truncate_left";
    case OverflowPolicy::kDropOldestTurns: return "drop_oldest_turns";
  }
  return "error";
}

OverflowPolicy parse_overflow_policy(std::string_view name) {
  for (OverflowPolicy p :
       {OverflowPolicy::kError, OverflowPolicy::kTruncateLeft, OverflowPolicy::kDropOldestTurns}) {
    if (name == overflow_policy_name(p)) return p;
  }
  throw std::invalid_argument(
      "overflow must be one of 'error', 'truncate_left', 'drop_oldest_turns', got '" +
      std::string(name) + "'");
}

bool GenerationConfig::has_sampling() const {
  return temperature || top_k || top_p || min_p || repetition_penalty || presence_penalty ||
         frequency_penalty;
}

void GenerationConfig::validate() const {
  if (max_new_tokens && *max_new_tokens < 1) {
    throw std::invalid_argument("max_new_tokens must be >= 1, got " +
                                std::to_string(*max_new_tokens));
  }
  // The sampling ranges are the sampler's own (one rule, in validate(SamplingParams)).
  axllm::validate(resolve_sampling(*this, SamplingParams{}));
  if (stop.size() > kMaxStopStrings) {
    throw std::invalid_argument("stop holds " + std::to_string(stop.size()) + " strings; at most " +
                                std::to_string(kMaxStopStrings) + " are allowed");
  }
  for (const std::string& s : stop) {
    if (s.empty()) throw std::invalid_argument("stop strings must not be empty");
  }
}

SamplingParams resolve_sampling(const GenerationConfig& config,
                                const SamplingParams& model_default) {
  SamplingParams p;
  if (config.has_sampling()) {
    p.mode = SamplerMode::kHf;
    p.temperature = config.temperature.value_or(p.temperature);
    p.top_k = config.top_k.value_or(p.top_k);
    p.top_p = config.top_p.value_or(p.top_p);
    p.min_p = config.min_p.value_or(p.min_p);
    p.repetition_penalty = config.repetition_penalty.value_or(p.repetition_penalty);
    p.presence_penalty = config.presence_penalty.value_or(p.presence_penalty);
    p.frequency_penalty = config.frequency_penalty.value_or(p.frequency_penalty);
  } else {
    p = model_default;
  }
  if (config.seed) {
    p.seed = *config.seed;
    p.has_seed = true;
  }
  return p;
}

int64_t prompt_limit(const GenerationConfig& config, int64_t context) {
  if (config.overflow == OverflowPolicy::kError) return context;
  const int64_t room = std::min<int64_t>(config.max_new_tokens.value_or(256), context / 2);
  return context - room;
}

std::vector<int32_t> fit_prompt(std::vector<int32_t> prompt, const GenerationConfig& config,
                                int64_t context) {
  const int64_t n = static_cast<int64_t>(prompt.size());
  if (n <= context) return prompt;
  if (config.overflow == OverflowPolicy::kTruncateLeft) {
    const int64_t keep = prompt_limit(config, context);
    prompt.erase(prompt.begin(), prompt.end() - keep);
    return prompt;
  }
  throw ContextOverflowError(n, context,
                             "the prompt has " + std::to_string(n) +
                                 " tokens but the context holds " + std::to_string(context));
}

}  // namespace axllm
