// The token sampler: greedy and tie rules, hand-worked hf and vendor cases, seeded determinism,
// empirical frequencies against probabilities(), parameter validation and allocation-free calls.
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "axllm/sampler.h"
#include "check.h"

using namespace axllm;

// Every allocation of the process is counted, so a test can assert that a call did not allocate.
static std::atomic<long> g_allocations{0};

void* operator new(std::size_t n) {
  ++g_allocations;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
// Out of line so that GCC does not pair the inlined free() with operator new and warn.
[[gnu::noinline]] static void release(void* p) noexcept { std::free(p); }
void operator delete(void* p) noexcept { release(p); }
void operator delete(void* p, std::size_t) noexcept { release(p); }

using Ids = std::vector<int32_t>;

static SamplingParams hf(float temperature) {
  SamplingParams p;
  p.temperature = temperature;
  p.seed = 7;
  p.has_seed = true;
  return p;
}

static SamplingParams vendor(float temperature) {
  SamplingParams p = hf(temperature);
  p.mode = SamplerMode::kVendor;
  return p;
}

static std::vector<double> softmax(const std::vector<double>& x) {
  double m = x[0];
  for (double v : x) m = std::max(m, v);
  std::vector<double> e(x.size());
  double z = 0;
  for (size_t i = 0; i < x.size(); ++i) z += e[i] = std::exp(x[i] - m);
  for (double& v : e) v /= z;
  return e;
}

static void check_probs(const std::vector<float>& got, const std::vector<double>& want) {
  CHECK(got.size() == want.size());
  for (size_t i = 0; i < got.size() && i < want.size(); ++i) CHECK_NEAR(got[i], want[i], 1e-6);
}

static bool throws_invalid(const SamplingParams& p, const std::string& field) {
  try {
    validate(p);
  } catch (const std::invalid_argument& e) {
    return std::string(e.what()).rfind(field, 0) == 0;
  }
  return false;
}

static void greedy() {
  Sampler s(hf(0.0f));
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f};
  CHECK(s.sample(logits, {}, {}) == 1);  // tie between 1 and 3: the lowest index
  check_probs(s.probabilities(logits, {}, {}), {0, 1, 0, 0, 0});
  const std::vector<float> negative = {-3.0f, -2.0f, -2.5f};
  CHECK(s.sample(negative, {}, {}) == 1);

  // Penalties apply before the argmax: 1 and 3 are seen, 2.0 / 2 = 1.0 < 1.5.
  SamplingParams p = hf(0.0f);
  p.repetition_penalty = 2.0f;
  Sampler r(p);
  const std::vector<float> l2 = {0.5f, 2.0f, -1.0f, 2.0f, 1.5f};
  CHECK(r.sample(l2, Ids{1}, Ids{3, 3}) == 4);
  CHECK(r.sample(l2, Ids{}, Ids{}) == 1);

  // Ids >= vocab are ignored by the penalties; a negative temperature is refused, not greedy.
  CHECK(s.sample(logits, Ids{100}, Ids{}) == 1);
  CHECK(throws_invalid(hf(-1.0f), "temperature"));
}

static void bad_inputs() {
  Sampler s(hf(1.0f));
  Sampler g(hf(0.0f));
  const std::vector<float> ok = {1.0f, 2.0f};
  const std::vector<float> nan = {1.0f, std::nanf("")};
  const std::vector<float> all_neg_inf = {-INFINITY, -INFINITY};
  const std::vector<float> pos_inf = {1.0f, INFINITY};
  auto invalid = [](auto fn) {
    try {
      fn();
    } catch (const std::invalid_argument&) {
      return true;
    }
    return false;
  };
  CHECK(invalid([&] { s.sample(std::span<const float>(), {}, {}); }));
  CHECK(invalid([&] { s.sample(nan, {}, {}); }));
  CHECK(invalid([&] { g.sample(nan, {}, {}); }));
  CHECK(invalid([&] { s.sample(all_neg_inf, {}, {}); }));
  CHECK(invalid([&] { s.sample(pos_inf, {}, {}); }));
  CHECK(invalid([&] { s.sample(ok, Ids{-1}, {}); }));
  CHECK(invalid([&] { g.sample(ok, {}, Ids{0, -5}); }));
  CHECK(g.sample(pos_inf, {}, {}) == 1);  // greedy has no distribution to form
}

static void validation() {
  SamplingParams p;
  validate(p);
  p.top_p = 1.5f;
  try {
    validate(p);
    CHECK(false);
  } catch (const std::invalid_argument& e) {
    CHECK(std::string(e.what()) == "top_p must be in (0, 1], got 1.5");
  }
  auto bad = [](auto edit, const char* field) {
    SamplingParams q;
    edit(q);
    CHECK(throws_invalid(q, field));
  };
  bad([](SamplingParams& q) { q.top_p = 0.0f; }, "top_p");
  bad([](SamplingParams& q) { q.top_p = std::nanf(""); }, "top_p");
  bad([](SamplingParams& q) { q.top_k = -1; }, "top_k");
  bad([](SamplingParams& q) { q.min_p = 1.01f; }, "min_p");
  bad([](SamplingParams& q) { q.temperature = INFINITY; }, "temperature");
  bad([](SamplingParams& q) { q.repetition_penalty = 0.0f; }, "repetition_penalty");
  bad([](SamplingParams& q) { q.presence_penalty = std::nanf(""); }, "presence_penalty");
  bad([](SamplingParams& q) { q.frequency_penalty = -INFINITY; }, "frequency_penalty");
  bad([](SamplingParams& q) { q.enable_top_k = true; }, "enable_top_k");
  bad([](SamplingParams& q) { q.enable_top_p = true; }, "enable_top_p");
  bad([](SamplingParams& q) { q.penalty_window = 64; }, "penalty_window");
  bad(
      [](SamplingParams& q) {
        q.mode = SamplerMode::kVendor;
        q.min_p = 0.1f;
      },
      "min_p");
  bad(
      [](SamplingParams& q) {
        q.mode = SamplerMode::kVendor;
        q.presence_penalty = 1.0f;
      },
      "presence_penalty");
  bad(
      [](SamplingParams& q) {
        q.mode = SamplerMode::kVendor;
        q.frequency_penalty = 1.0f;
      },
      "frequency_penalty");
  bad(
      [](SamplingParams& q) {
        q.mode = SamplerMode::kVendor;
        q.enable_top_k = true;
      },
      "top_k");
  bad(
      [](SamplingParams& q) {
        q.mode = SamplerMode::kVendor;
        q.penalty_window = -1;
      },
      "penalty_window");
  p = SamplingParams{};
  p.top_p = 1.5f;
  bool threw = false;
  try {
    Sampler s(p);
  } catch (const std::invalid_argument&) {
    threw = true;
  }
  CHECK(threw);
}

static void hf_by_hand() {
  // Temperature divides the scores.
  {
    Sampler s(hf(2.0f));
    check_probs(s.probabilities(std::vector<float>{2.0f, 0.0f, -2.0f}, {}, {}),
                softmax({1.0, 0.0, -1.0}));
  }
  // Top-k keeps every token tied with the k-th score.
  {
    SamplingParams p = hf(1.0f);
    p.top_k = 1;
    Sampler s(p);
    check_probs(s.probabilities(std::vector<float>{1, 3, 3, 2}, {}, {}), {0, 0.5, 0.5, 0});
    p.top_k = 2;
    Sampler s2(p);
    check_probs(s2.probabilities(std::vector<float>{1, 3, 3, 2}, {}, {}), {0, 0.5, 0.5, 0});
    p.top_k = 3;
    Sampler s3(p);
    const std::vector<double> want = softmax({3, 3, 2});
    check_probs(s3.probabilities(std::vector<float>{1, 3, 3, 2}, {}, {}),
                {0, want[0], want[1], want[2]});
    p.top_k = 1000;  // larger than the vocab: off
    Sampler big(p);
    check_probs(big.probabilities(std::vector<float>{1, 3, 3, 2}, {}, {}), softmax({1, 3, 3, 2}));
  }
  // Top-p: probabilities 0.5, 0.3, 0.15, 0.05. With 0.75 the mass above the third token (0.8)
  // has reached top_p, so it and everything below go.
  const std::vector<float> four = {std::log(0.15f), std::log(0.5f), std::log(0.05f),
                                   std::log(0.3f)};
  {
    SamplingParams p = hf(1.0f);
    p.top_p = 0.75f;
    Sampler s(p);
    check_probs(s.probabilities(four, {}, {}), {0, 0.5 / 0.8, 0, 0.3 / 0.8});
    p.top_p = 0.1f;  // only the top token
    Sampler tiny(p);
    check_probs(tiny.probabilities(four, {}, {}), {0, 1, 0, 0});
  }
  // Top-p among equal scores: the higher index ranks first (transformers' ascending sort keeps
  // the last of equal elements on the kept side).
  {
    SamplingParams p = hf(1.0f);
    p.top_p = 0.5f;
    Sampler s(p);
    check_probs(s.probabilities(std::vector<float>{0, 0, 0, 0}, {}, {}), {0, 0, 0.5, 0.5});
    p.top_p = 0.2f;
    Sampler one(p);
    check_probs(one.probabilities(std::vector<float>{5, 5, 0}, {}, {}), {0, 1, 0});
  }
  // Min-p 0.2 of the top probability 0.5 removes the 0.05 token.
  {
    SamplingParams p = hf(1.0f);
    p.min_p = 0.2f;
    Sampler s(p);
    check_probs(s.probabilities(four, {}, {}), {0.15 / 0.95, 0.5 / 0.95, 0, 0.3 / 0.95});
  }
  // Repetition penalty over the distinct prompt and generated ids: negative * p, else / p.
  {
    SamplingParams p = hf(1.0f);
    p.repetition_penalty = 2.0f;
    Sampler s(p);
    check_probs(s.probabilities(std::vector<float>{2, -1, 0.5f, 1.5f}, Ids{0, 0}, Ids{1, 1, 1}),
                softmax({1, -2, 0.5, 1.5}));
  }
  // Presence and frequency penalties count the generated ids only.
  {
    SamplingParams p = hf(1.0f);
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.25f;
    Sampler s(p);
    check_probs(s.probabilities(std::vector<float>{1, 1, 1}, Ids{2, 2}, Ids{0, 0, 1}),
                softmax({1 - 0.5 - 0.5, 1 - 0.25 - 0.5, 1}));
  }
}

static void vendor_by_hand() {
  // temperature 2, penalty 4 (sqrt 2) over the last 2 generated ids {1, 2}; the prompt's 3 is
  // not penalized: [4, 6, -2, 5] / 2 = [2, 3, -1, 2.5] -> [2, 1.5, -2, 2.5].
  const std::vector<float> logits = {4, 6, -2, 5};
  const Ids prompt = {3, 3};
  const Ids generated = {0, 1, 2};
  SamplingParams p = vendor(2.0f);
  p.repetition_penalty = 4.0f;
  p.penalty_window = 2;
  {
    Sampler s(p);  // neither top-p nor top-k: argmax
    CHECK(s.sample(logits, prompt, generated) == 3);
    check_probs(s.probabilities(logits, prompt, generated), {0, 0, 0, 1});
  }
  {
    SamplingParams q = p;
    q.enable_top_k = true;
    q.top_k = 2;
    Sampler s(q);
    const std::vector<double> two = softmax({2, 2.5});
    check_probs(s.probabilities(logits, prompt, generated), {two[0], 0, 0, two[1]});
    q.top_k = 1;
    Sampler g(q);
    check_probs(g.probabilities(logits, prompt, generated), {0, 0, 0, 1});
  }
  {
    // softmax [2, 1.5, -2, 2.5] = [0.3055, 0.1853, 0.0056, 0.5036]: top_p 0.7 keeps 3, then 0
    // (cumulative 0.809 >= 0.7).
    SamplingParams q = p;
    q.enable_top_p = true;
    q.top_p = 0.7f;
    Sampler s(q);
    const std::vector<double> all = softmax({2, 1.5, -2, 2.5});
    const double kept = all[0] + all[3];
    check_probs(s.probabilities(logits, prompt, generated), {all[0] / kept, 0, 0, all[3] / kept});
    q.enable_top_k = true;  // top-p wins when both are enabled
    q.top_k = 4;
    Sampler both(q);
    check_probs(both.probabilities(logits, prompt, generated),
                {all[0] / kept, 0, 0, all[3] / kept});
  }
  {
    // A penalty window of 1 sees only id 2: [2, 3, -2, 2.5] -> argmax 1.
    SamplingParams q = p;
    q.penalty_window = 1;
    Sampler s(q);
    CHECK(s.sample(logits, prompt, generated) == 1);
    q.penalty_window = 0;
    Sampler none(q);
    CHECK(none.sample(logits, prompt, generated) == 1);
  }
  {
    // Ties: top-k keeps exactly k, lower index first; top-p walks lower indices first.
    SamplingParams q = vendor(1.0f);
    q.enable_top_k = true;
    q.top_k = 2;
    Sampler k2(q);
    check_probs(k2.probabilities(std::vector<float>{3, 2, 2, 0}, {}, {}),
                {softmax({3, 2})[0], softmax({3, 2})[1], 0, 0});
    SamplingParams t = vendor(1.0f);
    t.enable_top_p = true;
    t.top_p = 0.5f;
    Sampler tp(t);
    check_probs(tp.probabilities(std::vector<float>{0, 0, 0, 0}, {}, {}), {0.5, 0.5, 0, 0});
  }
  {
    // A positive score is divided by sqrt(p), a zero or negative one multiplied.
    SamplingParams q = vendor(1.0f);
    q.repetition_penalty = 4.0f;
    q.enable_top_k = true;
    q.top_k = 3;
    Sampler s(q);
    check_probs(s.probabilities(std::vector<float>{1, -1, 0}, {}, Ids{0, 1, 2, 0}),
                softmax({0.5, -2, 0}));
  }
}

static void determinism() {
  SamplingParams p = hf(0.9f);
  p.top_k = 50;
  p.top_p = 0.95f;
  p.repetition_penalty = 1.1f;
  std::mt19937 gen(3);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  std::vector<float> logits(1000);
  for (float& v : logits) v = normal(gen);
  auto run = [&](uint64_t seed) {
    SamplingParams q = p;
    q.seed = seed;
    Sampler s(q);
    Ids out;
    for (int i = 0; i < 64; ++i) out.push_back(s.sample(logits, Ids{1, 2, 3}, out));
    return out;
  };
  CHECK(run(1) == run(1));
  CHECK(run(1) != run(2));
  SamplingParams v = vendor(0.8f);
  v.enable_top_p = true;
  v.top_p = 0.9f;
  v.seed = 11;
  Sampler a(v), b(v);
  bool same = true;
  for (int i = 0; i < 64; ++i) same = same && a.sample(logits, {}, {}) == b.sample(logits, {}, {});
  CHECK(same);
}

// Draws many times and compares the counts with probabilities() by a chi-square statistic.
static void frequencies(const SamplingParams& p, const std::vector<float>& logits,
                        const Ids& prompt, const Ids& generated) {
  Sampler s(p);
  const std::vector<float> probs = s.probabilities(logits, prompt, generated);
  const int n = 200000;
  std::vector<int> counts(logits.size(), 0);
  for (int i = 0; i < n; ++i) ++counts[static_cast<size_t>(s.sample(logits, prompt, generated))];
  double chi2 = 0;
  int support = 0;
  bool outside = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    if (probs[i] > 0) {
      const double expect = n * static_cast<double>(probs[i]);
      chi2 += (counts[i] - expect) * (counts[i] - expect) / expect;
      ++support;
    } else if (counts[i] != 0) {
      outside = true;
    }
  }
  CHECK(!outside);
  const double df = std::max(1, support - 1);
  CHECK(chi2 < df + 6.0 * std::sqrt(2.0 * df) + 10.0);
}

static void empirical() {
  std::mt19937 gen(5);
  std::normal_distribution<float> normal(0.0f, 1.5f);
  std::vector<float> logits(40);
  for (float& v : logits) v = normal(gen);
  logits[7] = logits[9];  // a tie
  SamplingParams p = hf(0.8f);
  p.top_k = 12;
  p.top_p = 0.9f;
  p.repetition_penalty = 1.3f;
  p.frequency_penalty = 0.2f;
  frequencies(p, logits, Ids{1, 2}, Ids{3, 3, 4});
  SamplingParams plain = hf(1.0f);
  frequencies(plain, logits, {}, {});
  SamplingParams mp = hf(1.5f);
  mp.min_p = 0.1f;
  frequencies(mp, logits, {}, {});
  SamplingParams v = vendor(0.7f);
  v.enable_top_p = true;
  v.top_p = 0.8f;
  v.repetition_penalty = 1.2f;
  frequencies(v, logits, {}, Ids{5, 6, 7});
  v.enable_top_p = false;
  v.enable_top_k = true;
  v.top_k = 6;
  frequencies(v, logits, {}, Ids{5, 6, 7});
}

static void vocab_changes_and_allocations() {
  SamplingParams p = hf(0.7f);
  p.top_k = 20;
  p.top_p = 0.9f;
  p.repetition_penalty = 1.2f;
  p.presence_penalty = 0.3f;
  Sampler s(p);
  std::mt19937 gen(9);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  std::vector<float> big(151936), small(17);
  for (float& v : big) v = normal(gen);
  for (float& v : small) v = normal(gen);
  const Ids prompt = {5, 6, 7, 100000};
  const Ids generated = {8, 8, 9};
  const int32_t a = s.sample(big, prompt, generated);
  CHECK(a >= 0 && a < 151936);
  const int32_t b = s.sample(small, Ids{5, 6, 7}, generated);
  CHECK(b >= 0 && b < 17);

  long before = g_allocations.load();
  for (int i = 0; i < 20; ++i) s.sample(big, prompt, generated);
  CHECK(g_allocations.load() == before);

  Sampler g(hf(0.0f));
  before = g_allocations.load();
  CHECK(g.sample(big, prompt, generated) == g.sample(big, {}, {}));
  CHECK(g_allocations.load() == before);

  SamplingParams full = hf(1.2f);  // no filters: the whole vocabulary
  Sampler f(full);
  f.sample(big, {}, {});
  before = g_allocations.load();
  for (int i = 0; i < 5; ++i) f.sample(big, {}, {});
  CHECK(g_allocations.load() == before);
}

int main() {
  greedy();
  bad_inputs();
  validation();
  hf_by_hand();
  vendor_by_hand();
  determinism();
  empirical();
  vocab_changes_and_allocations();
  return axllm_test::finish("test_sampler");
}
