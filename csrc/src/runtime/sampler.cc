#include "axllm/sampler.h"

#include <algorithm>
#include <array>
#include <bit>
#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstring>

#if defined(__x86_64__)
#include <immintrin.h>
#endif
#include <functional>
#include <limits>
#include <stdexcept>
#include <string>

namespace axllm {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();

std::string number(float v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, r.ptr);
}

[[noreturn]] void reject(const std::string& field, const std::string& rule,
                         const std::string& got) {
  throw std::invalid_argument(field + " must be " + rule + ", got " + got);
}

[[noreturn]] void throw_nan(size_t index) {
  throw std::invalid_argument("logits: value at index " + std::to_string(index) + " is NaN");
}

// The largest value of v[0, n) and whether any value is NaN; scalar.
float max_scalar(const float* v, size_t n, bool& nan) {
  float m = -kInf;
  for (size_t i = 0; i < n; ++i) {
    if (std::isnan(v[i])) {
      nan = true;
    } else if (v[i] > m) {
      m = v[i];
    }
  }
  return m;
}

#if defined(__x86_64__)
// The same with AVX2: eight lanes of running maxima and a NaN mask.
__attribute__((target("avx2"))) float max_avx2(const float* v, size_t n, bool& nan) {
  __m256 vm = _mm256_set1_ps(-kInf);
  __m256 vnan = _mm256_setzero_ps();
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 x = _mm256_loadu_ps(v + i);
    vnan = _mm256_or_ps(vnan, _mm256_cmp_ps(x, x, _CMP_UNORD_Q));
    vm = _mm256_max_ps(x, vm);
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, vm);
  nan = nan || _mm256_movemask_ps(vnan) != 0;
  float m = max_scalar(v + i, n - i, nan);
  for (float l : lanes) m = l > m ? l : m;
  return m;
}

bool has_avx2() {
  static const bool yes = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
  }();
  return yes;
}
#endif

// Index of the largest value, the lowest index on ties. Throws on NaN. Two passes (the maximum,
// then its first position), the first vectorized where the CPU allows.
int32_t argmax(const float* v, size_t n) {
  bool nan = false;
#if defined(__x86_64__)
  const float m = has_avx2() ? max_avx2(v, n, nan) : max_scalar(v, n, nan);
#else
  const float m = max_scalar(v, n, nan);
#endif
  if (nan) {
    for (size_t j = 0; j < n; ++j) {
      if (std::isnan(v[j])) throw_nan(j);
    }
  }
  for (size_t j = 0; j < n; ++j) {
    if (v[j] == m) return static_cast<int32_t>(j);
  }
  return 0;
}

void check_ids(std::span<const int32_t> ids, const char* name) {
  for (size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0) {
      throw std::invalid_argument(std::string(name) + ": token id " + std::to_string(ids[i]) +
                                  " at position " + std::to_string(i) + " is negative");
    }
  }
}

// The largest score, which must be finite for a distribution to exist.
float finite_max(const float* v, size_t n) {
  const float m = v[argmax(v, n)];
  if (!std::isfinite(m)) {
    throw std::invalid_argument(m > 0 ? "logits: cannot sample, the largest score is +inf"
                                      : "logits: cannot sample, every score is -inf");
  }
  return m;
}

// Order-preserving unsigned image of a non-NaN float (-0 and +0 map alike).
uint32_t ordered_bits(float f) {
  const uint32_t u = std::bit_cast<uint32_t>(f + 0.0f);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

// A sort key: higher score first, then, among equal scores, the higher index first (kHf) or the
// lower index first (kVendor).
uint64_t rank_key(float score, int32_t id, bool higher_index_first) {
  const uint32_t tie =
      higher_index_first ? static_cast<uint32_t>(id) : 0xFFFFFFFFu - static_cast<uint32_t>(id);
  return (static_cast<uint64_t>(ordered_bits(score)) << 32) | tie;
}

int32_t key_id(uint64_t key, bool higher_index_first) {
  const uint32_t tie = static_cast<uint32_t>(key);
  return static_cast<int32_t>(higher_index_first ? tie : 0xFFFFFFFFu - tie);
}

// Moves the k largest of v[0, n) (0 < k < n) into v[0, k), in no particular order. Small k uses
// a bounded min-heap (one pass, few swaps), large k nth_element.
template <class T>
void select_largest(T* v, size_t n, size_t k) {
  const std::greater<T> greater;
  if (k * 8 > n) {
    std::nth_element(v, v + (k - 1), v + n, greater);
    return;
  }
  std::make_heap(v, v + k, greater);
  for (size_t i = k; i < n; ++i) {
    if (v[i] > v[0]) {
      std::pop_heap(v, v + k, greater);
      std::swap(v[k - 1], v[i]);
      std::push_heap(v, v + k, greater);
    }
  }
}

// Orders keys[0, n) from the largest down, lazily, and calls keep(position, key) in that order
// until it returns false. Returns the number of keys kept; they are keys[0, kept) in order. Only
// the visited prefix gets sorted: blocks are split off with nth_element and sorted, growing
// geometrically.
template <class Keep>
size_t take_prefix(uint64_t* keys, size_t n, Keep keep) {
  const std::greater<uint64_t> greater;
  size_t done = 0;
  size_t block = 64;
  while (done < n) {
    const size_t end = std::min(n, done + block);
    if (end < n) std::nth_element(keys + done, keys + end, keys + n, greater);
    std::sort(keys + done, keys + end, greater);
    for (size_t j = done; j < end; ++j) {
      if (!keep(j, keys[j])) return j;
    }
    done = end;
    block *= 4;
  }
  return n;
}

}  // namespace

void validate(const SamplingParams& p) {
  if (p.mode != SamplerMode::kHf && p.mode != SamplerMode::kVendor) {
    reject("mode", "kHf or kVendor", std::to_string(static_cast<int>(p.mode)));
  }
  if (!(std::isfinite(p.temperature) && p.temperature >= 0.0f)) {
    reject("temperature", "finite and >= 0 (0 is greedy)", number(p.temperature));
  }
  if (p.top_k < 0) reject("top_k", ">= 0", std::to_string(p.top_k));
  if (!(p.top_p > 0.0f && p.top_p <= 1.0f)) reject("top_p", "in (0, 1]", number(p.top_p));
  if (!(p.min_p >= 0.0f && p.min_p <= 1.0f)) reject("min_p", "in [0, 1]", number(p.min_p));
  if (!(std::isfinite(p.repetition_penalty) && p.repetition_penalty > 0.0f)) {
    reject("repetition_penalty", "finite and > 0", number(p.repetition_penalty));
  }
  if (!std::isfinite(p.presence_penalty)) {
    reject("presence_penalty", "finite", number(p.presence_penalty));
  }
  if (!std::isfinite(p.frequency_penalty)) {
    reject("frequency_penalty", "finite", number(p.frequency_penalty));
  }
  if (p.penalty_window < 0) reject("penalty_window", ">= 0", std::to_string(p.penalty_window));
  if (p.mode == SamplerMode::kHf) {
    if (p.enable_top_p) {
      throw std::invalid_argument(
          "enable_top_p applies only to vendor mode (hf mode uses top_p < 1)");
    }
    if (p.enable_top_k) {
      throw std::invalid_argument(
          "enable_top_k applies only to vendor mode (hf mode uses top_k > 0)");
    }
    if (p.penalty_window != SamplingParams{}.penalty_window) {
      throw std::invalid_argument("penalty_window applies only to vendor mode, got " +
                                  std::to_string(p.penalty_window) + " in hf mode");
    }
  } else {
    if (p.min_p != 0.0f) {
      throw std::invalid_argument("min_p is not supported in vendor mode, got " + number(p.min_p));
    }
    if (p.presence_penalty != 0.0f) {
      throw std::invalid_argument("presence_penalty is not supported in vendor mode, got " +
                                  number(p.presence_penalty));
    }
    if (p.frequency_penalty != 0.0f) {
      throw std::invalid_argument("frequency_penalty is not supported in vendor mode, got " +
                                  number(p.frequency_penalty));
    }
    if (p.enable_top_k && p.top_k < 1) {
      reject("top_k", ">= 1 with enable_top_k", std::to_string(p.top_k));
    }
  }
}

Sampler::Sampler(const SamplingParams& params) : params_(params) {
  validate(params_);
  if (params_.has_seed) {
    rng_.seed(params_.seed);
  } else {
    std::random_device rd;
    rng_.seed((static_cast<uint64_t>(rd()) << 32) ^ static_cast<uint64_t>(rd()));
  }
}

double Sampler::uniform() { return static_cast<double>(rng_() >> 11) * 0x1.0p-53; }

void Sampler::reserve(size_t vocab) {
  scores_.resize(vocab);
  if (weights_.size() < vocab) weights_.resize(vocab);
  if (active_.size() < vocab) active_.resize(vocab);
  if (counts_.size() < vocab) counts_.resize(vocab, 0);
  if (marks_.size() < vocab) marks_.resize(vocab, 0);
  if (keys_.size() < vocab) keys_.resize(vocab);
}

void Sampler::activate_all(float max_score) {
  const size_t vocab = scores_.size();
  size_t n = 0;
  for (size_t i = 0; i < vocab; ++i) {
    const float s = scores_[i];
    if (s > -kInf) {
      active_[n++] = static_cast<int32_t>(i);
      weights_[i] = std::exp(s - max_score);
    }
  }
  n_active_ = n;
}

void Sampler::total_active() {
  double sum = 0.0;
  for (size_t j = 0; j < n_active_; ++j) sum += weights_[active_[j]];
  total_ = sum;
}

void Sampler::keep_nucleus(bool hf) {
  const double total = total_;
  const float hf_limit = static_cast<float>(1.0 - static_cast<double>(params_.top_p));
  const double top_p = params_.top_p;
  // Whether the token whose higher-ranked tokens hold `above` of the weight is cut. The rule is
  // non-decreasing in `above`, which is what makes the bucketing below exact.
  auto removed = [&](double above) {
    return hf ? static_cast<float>(1.0 - above / total) <= hf_limit : above / total >= top_p;
  };
  const float* s = scores_.data();
  const float* w = weights_.data();
  auto bucket = [w](int32_t id) { return std::bit_cast<uint32_t>(w[id]) >> 23; };

  // Weights lie in [0, 1]; bucket them by binary exponent, from the heaviest bucket down.
  std::array<double, 256> mass{};
  std::array<uint32_t, 256> count{};
  for (size_t j = 0; j < n_active_; ++j) {
    const int32_t id = active_[j];
    mass[bucket(id)] += w[id];
    ++count[bucket(id)];
  }
  double before = 0.0;
  int cut = -1;
  for (int b = 255; b >= 0; --b) {
    if (count[b] == 0) continue;
    if (removed(before + mass[b])) {
      cut = b;
      break;
    }
    before += mass[b];
  }
  if (cut < 0) return;

  // Every token of a heavier bucket has less than `before` above it: kept, in any order. Tokens
  // of lighter buckets have at least before + mass[cut] above them: cut. Only the cut bucket is
  // walked in rank order.
  const uint32_t cut_bucket = static_cast<uint32_t>(cut);
  uint64_t* keys = keys_.data();
  size_t n_kept = 0;
  size_t n_walk = 0;
  for (size_t j = 0; j < n_active_; ++j) {
    const int32_t id = active_[j];
    const uint32_t b = bucket(id);
    if (b > cut_bucket) {
      active_[n_kept++] = id;
    } else if (b == cut_bucket) {
      keys[n_walk++] = rank_key(s[id], id, hf);
    }
  }
  const size_t base = n_kept;
  double above = before;
  const size_t walked = take_prefix(keys, n_walk, [&](size_t j, uint64_t key) {
    if (base + j > 0 && removed(above)) return false;
    const int32_t id = key_id(key, hf);
    active_[base + j] = id;
    above += w[id];
    return true;
  });
  n_active_ = base + walked;
}

void Sampler::apply_hf_penalties(std::span<const int32_t> prompt,
                                 std::span<const int32_t> generated) {
  const size_t vocab = scores_.size();
  float* s = scores_.data();
  const float rep = params_.repetition_penalty;
  if (rep != 1.0f) {
    auto penalize = [&](std::span<const int32_t> ids) {
      for (const int32_t id : ids) {
        const size_t t = static_cast<size_t>(id);
        if (t >= vocab || marks_[t]) continue;
        marks_[t] = 1;
        s[t] = s[t] < 0.0f ? s[t] * rep : s[t] / rep;
      }
    };
    penalize(prompt);
    penalize(generated);
    for (const auto ids : {prompt, generated}) {
      for (const int32_t id : ids) {
        if (static_cast<size_t>(id) < vocab) marks_[static_cast<size_t>(id)] = 0;
      }
    }
  }
  const float presence = params_.presence_penalty;
  const float frequency = params_.frequency_penalty;
  if (presence != 0.0f || frequency != 0.0f) {
    for (const int32_t id : generated) {
      if (static_cast<size_t>(id) < vocab) ++counts_[static_cast<size_t>(id)];
    }
    for (const int32_t id : generated) {
      const size_t t = static_cast<size_t>(id);
      if (t >= vocab || counts_[t] == 0) continue;
      s[t] -= frequency * static_cast<float>(counts_[t]);
      s[t] -= presence;
      counts_[t] = 0;
    }
  }
}

void Sampler::apply_vendor_penalty(std::span<const int32_t> generated) {
  const size_t vocab = scores_.size();
  const size_t window = static_cast<size_t>(params_.penalty_window);
  const auto recent = generated.size() > window ? generated.last(window) : generated;
  const float root = std::sqrt(params_.repetition_penalty);
  float* s = scores_.data();
  for (const int32_t id : recent) {
    const size_t t = static_cast<size_t>(id);
    if (t >= vocab || marks_[t]) continue;
    marks_[t] = 1;
    s[t] = s[t] > 0.0f ? s[t] / root : s[t] * root;
  }
  for (const int32_t id : recent) {
    if (static_cast<size_t>(id) < vocab) marks_[static_cast<size_t>(id)] = 0;
  }
}

int32_t Sampler::prepare(std::span<const float> logits, std::span<const int32_t> prompt,
                         std::span<const int32_t> generated) {
  if (logits.empty()) throw std::invalid_argument("logits: empty");
  if (logits.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    throw std::invalid_argument("logits: " + std::to_string(logits.size()) +
                                " entries exceed the int32 token id range");
  }
  check_ids(prompt, "prompt");
  check_ids(generated, "generated");
  return params_.mode == SamplerMode::kHf ? prepare_hf(logits, prompt, generated)
                                          : prepare_vendor(logits, generated);
}

int32_t Sampler::prepare_hf(std::span<const float> logits, std::span<const int32_t> prompt,
                            std::span<const int32_t> generated) {
  const SamplingParams& p = params_;
  const bool penalized =
      p.repetition_penalty != 1.0f || p.presence_penalty != 0.0f || p.frequency_penalty != 0.0f;
  const bool greedy = p.temperature <= 0.0f;
  if (greedy && !penalized) return argmax(logits.data(), logits.size());

  const size_t vocab = logits.size();
  reserve(vocab);
  std::copy(logits.begin(), logits.end(), scores_.begin());
  if (penalized) apply_hf_penalties(prompt, generated);
  float* s = scores_.data();
  if (greedy) return argmax(s, vocab);

  float max_score = finite_max(s, vocab);
  if (p.temperature != 1.0f) {
    const float t = p.temperature;
    // transformers divides the raw scores; only when that overflows are they first shifted so
    // that the largest is 0 (a limit transformers itself cannot reach: it yields NaN).
    const float shift = std::isinf(max_score / t) ? max_score : 0.0f;
    for (size_t i = 0; i < vocab; ++i) s[i] = (s[i] - shift) / t;
    max_score = (max_score - shift) / t;
  }

  const int64_t k = p.top_k;
  if (k > 0 && static_cast<uint64_t>(k) < vocab) {
    const size_t kk = static_cast<size_t>(k);
    select_.resize(vocab);
    std::copy(s, s + vocab, select_.begin());
    select_largest(select_.data(), vocab, kk);
    const float kth = *std::min_element(select_.begin(), select_.begin() + kk);
    size_t n = 0;
    for (size_t i = 0; i < vocab; ++i) {
      if (s[i] >= kth && s[i] > -kInf) {
        active_[n++] = static_cast<int32_t>(i);
        weights_[i] = std::exp(s[i] - max_score);
      }
    }
    n_active_ = n;
  } else {
    activate_all(max_score);
  }

  if (p.top_p < 1.0f) {
    total_active();
    keep_nucleus(true);
  }

  if (p.min_p > 0.0f) {
    // The top token is always active with weight exp(0) = 1, so weight = probability / top.
    const float min_p = p.min_p;
    size_t n = 0;
    for (size_t j = 0; j < n_active_; ++j) {
      const int32_t id = active_[j];
      if (weights_[id] >= min_p) active_[n++] = id;
    }
    n_active_ = n;
  }

  total_active();
  return -1;
}

int32_t Sampler::prepare_vendor(std::span<const float> logits, std::span<const int32_t> generated) {
  const SamplingParams& p = params_;
  const bool penalized = p.repetition_penalty != 1.0f && p.penalty_window > 0 && !generated.empty();
  const bool sampling = p.temperature > 0.0f && (p.enable_top_p || (p.enable_top_k && p.top_k > 1));
  if (!sampling && !penalized) return argmax(logits.data(), logits.size());

  const size_t vocab = logits.size();
  reserve(vocab);
  std::copy(logits.begin(), logits.end(), scores_.begin());
  float* s = scores_.data();
  if (p.temperature > 0.0f && p.temperature != 1.0f) {
    const float t = p.temperature;
    for (size_t i = 0; i < vocab; ++i) s[i] /= t;
  }
  if (penalized) apply_vendor_penalty(generated);
  if (!sampling) return argmax(s, vocab);

  const float max_score = finite_max(s, vocab);
  if (p.enable_top_p) {
    activate_all(max_score);
    total_active();
    keep_nucleus(false);
  } else {
    uint64_t* keys = keys_.data();
    for (size_t i = 0; i < vocab; ++i) keys[i] = rank_key(s[i], static_cast<int32_t>(i), false);
    const size_t k = std::min(static_cast<size_t>(p.top_k), vocab);
    if (k < vocab) select_largest(keys, vocab, k);
    for (size_t j = 0; j < k; ++j) {
      const int32_t id = key_id(keys[j], false);
      active_[j] = id;
      weights_[id] = std::exp(s[id] - max_score);
    }
    n_active_ = k;
  }
  total_active();
  return -1;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> prompt,
                        std::span<const int32_t> generated) {
  const int32_t chosen = prepare(logits, prompt, generated);
  if (chosen >= 0) return chosen;
  const double target = uniform() * total_;
  double cumulative = 0.0;
  int32_t last = active_[0];
  for (size_t j = 0; j < n_active_; ++j) {
    const int32_t id = active_[j];
    const float w = weights_[id];
    if (w > 0.0f) {
      cumulative += w;
      last = id;
      if (cumulative > target) return id;
    }
  }
  return last;
}

std::vector<float> Sampler::probabilities(std::span<const float> logits,
                                          std::span<const int32_t> prompt,
                                          std::span<const int32_t> generated) {
  const int32_t chosen = prepare(logits, prompt, generated);
  std::vector<float> out(logits.size(), 0.0f);
  if (chosen >= 0) {
    out[static_cast<size_t>(chosen)] = 1.0f;
    return out;
  }
  for (size_t j = 0; j < n_active_; ++j) {
    const int32_t id = active_[j];
    out[static_cast<size_t>(id)] = static_cast<float>(weights_[id] / total_);
  }
  return out;
}

}  // namespace axllm
