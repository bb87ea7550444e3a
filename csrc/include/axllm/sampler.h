#pragma once
// Next-token selection from a logits vector: penalties, temperature, top-k / top-p / min-p
// filtering and a seeded draw. Two conventions are implemented:
//  - kHf: Hugging Face transformers' processors in generate()'s order (repetition penalty,
//    then temperature, top-k, top-p, min-p), plus OpenAI-style presence/frequency penalties
//    applied right after the repetition penalty;
//  - kVendor: the post-processing of AXERA's ax-llm runtime, configured by its post_config.json.
#include <cstdint>
#include <random>
#include <span>
#include <vector>

namespace axllm {

enum class SamplerMode { kHf, kVendor };

struct SamplingParams {
  SamplerMode mode = SamplerMode::kHf;
  float temperature = 1.0f;         // 0: greedy (argmax after penalties)
  int32_t top_k = 0;                // 0: off
  float top_p = 1.0f;               // 1: off
  float min_p = 0.0f;               // 0: off
  float repetition_penalty = 1.0f;  // 1: off
  float presence_penalty = 0.0f;    // 0: off
  float frequency_penalty = 0.0f;   // 0: off
  uint64_t seed = 0;                // with has_seed, runs are reproducible
  bool has_seed = false;
  // vendor mode (AXERA post_config.json) only:
  bool enable_top_p = false;
  bool enable_top_k = false;
  int32_t penalty_window = 20;
};

// Validates params; throws std::invalid_argument naming the field (e.g. "top_p must be in
// (0, 1], got 1.5"). Ranges: temperature finite and >= 0; top_k >= 0; top_p in (0, 1]; min_p in [0,
// 1]; repetition_penalty finite and > 0; presence/frequency penalties finite; penalty_window >= 0.
// Fields of the other mode must keep their defaults: kHf rejects enable_top_p, enable_top_k and
// a penalty_window other than 20; kVendor rejects min_p, presence_penalty and
// frequency_penalty, and requires top_k >= 1 with enable_top_k.
void validate(const SamplingParams& p);

// Picks tokens from logits according to SamplingParams. Not thread-safe: one sampler per
// generation. Scratch buffers are kept between calls, so after the first call at a given vocab
// size a call does not allocate.
//
// kHf semantics, in order:
//  1. repetition penalty over the distinct ids of prompt ++ generated: a score s < 0 becomes
//     s * p, otherwise s / p;
//  2. presence/frequency penalties over the generated ids: s -= frequency * count, then
//     s -= presence for every id generated at least once;
//  3. temperature <= 0: the argmax (lowest index on ties); nothing below applies and the random
//     generator is not used;
//  4. s /= temperature;
//  5. top-k: tokens scoring below the k-th highest score are removed (ties with it are kept);
//  6. top-p: walking the tokens from the most probable down, a token is removed once the
//     probability mass of the tokens ranked above it reaches top_p (exactly: when
//     1 - mass_above <= 1 - top_p in float32, as transformers compares); the most probable
//     token is always kept, and among equal scores the higher index ranks first (transformers'
//     order up to 16 tokens, where torch.sort is stable; beyond, its choice is arbitrary);
//  7. min-p: tokens with probability < min_p * (largest probability) are removed;
//  8. the draw is from the softmax of the remaining scores.
//
// kVendor semantics, in order:
//  1. s /= temperature (temperature <= 0: greedy, see 4.);
//  2. repetition penalty over the distinct ids among the last penalty_window generated ids (the
//     prompt is not used): s > 0 becomes s / sqrt(p), otherwise s * sqrt(p);
//  3. enable_top_p: softmax over the whole vocabulary, then the most probable tokens are kept
//     until their cumulative probability reaches top_p (the token crossing it is kept); the draw
//     is proportional to their softmax values;
//     else enable_top_k with top_k > 1: exactly the top_k highest scores are kept and the draw
//     follows their softmax;
//     among equal scores the lower index ranks first (ax-llm leaves that order unspecified);
//  4. otherwise: the argmax (lowest index on ties).
//
// In both modes ids >= logits.size() are ignored by the penalties (as transformers does) and
// a negative id throws std::invalid_argument. A NaN logit throws std::invalid_argument, as does
// sampling (not greedy) when the largest score is +inf or every score is -inf.
class Sampler {
 public:
  // Validates params; seeds a std::mt19937_64 from params.seed, or from std::random_device when
  // !params.has_seed.
  explicit Sampler(const SamplingParams& params);

  // Picks the next token from logits [vocab] given the prompt ids and the ids generated so far.
  // Greedy without penalties neither copies nor allocates.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> prompt,
                 std::span<const int32_t> generated);

  // The distribution `sample` draws from, dense [vocab] (zeros for filtered tokens); for greedy,
  // one-hot. Does not use the random generator. For tests.
  std::vector<float> probabilities(std::span<const float> logits, std::span<const int32_t> prompt,
                                   std::span<const int32_t> generated);

  const SamplingParams& params() const { return params_; }

 private:
  // Runs everything up to the draw. Returns the token when the choice is deterministic (greedy);
  // otherwise returns -1 and leaves the candidates in active_[0, n_active_) with their weights
  // (unnormalized probabilities) in weights_[token], summing to total_.
  int32_t prepare(std::span<const float> logits, std::span<const int32_t> prompt,
                  std::span<const int32_t> generated);
  int32_t prepare_hf(std::span<const float> logits, std::span<const int32_t> prompt,
                     std::span<const int32_t> generated);
  int32_t prepare_vendor(std::span<const float> logits, std::span<const int32_t> generated);
  void apply_hf_penalties(std::span<const int32_t> prompt, std::span<const int32_t> generated);
  void apply_vendor_penalty(std::span<const int32_t> generated);
  // Sizes scores_ to vocab and the other per-vocab buffers to at least vocab (allocating only
  // when the vocab grows).
  void reserve(size_t vocab);
  // Fills active_ with every token whose score is above -inf and computes its weight
  // exp(score - max_score).
  void activate_all(float max_score);
  // Sums weights_ over the active tokens into total_.
  void total_active();
  // Top-p over the active tokens (total_ must be current): keeps them from the highest rank
  // down until the rule of the mode cuts (see the class comment), without sorting them all.
  void keep_nucleus(bool hf);
  // A uniform double in [0, 1) from the generator (53 random bits).
  double uniform();

  SamplingParams params_;
  std::mt19937_64 rng_;
  std::vector<float> scores_;      // [vocab] working scores
  std::vector<float> weights_;     // [vocab] exp(score - max) of the active tokens
  std::vector<float> select_;      // [vocab] scratch for the k-th score
  std::vector<int32_t> active_;    // candidate token ids
  std::vector<uint64_t> keys_;     // [vocab] (score, index) sort keys
  std::vector<int32_t> counts_;    // [vocab] zero between calls: id occurrences
  std::vector<uint8_t> marks_;     // [vocab] zero between calls: id seen
  size_t n_active_ = 0;
  double total_ = 0.0;
};

}  // namespace axllm
