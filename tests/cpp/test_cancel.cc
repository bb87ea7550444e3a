// Cancel at every point of a prefill and of a decode, deterministically: a backend wrapping the
// host engine calls Llm::stop() right after its k-th layer run, for every k. Each cancelled
// generation must finish "cancelled" with the KV holding exactly the chunks or steps that
// completed, and the next full generation must equal one from a fresh model.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>

#include "axllm/backends.h"
#include "axllm/llm.h"
#include "check.h"
#include "hooked_backend.h"
#include "tiny_model_files.h"

namespace {

// The first step that is not prefill progress: the first token, or the finish.
axllm::StepResult first_output(axllm::Generation& gen) {
  axllm::StepResult r;
  do {
    r = gen.next();
  } while (r.token < 0 && r.finish == axllm::FinishReason::kNone);
  return r;
}

axllm::FinishReason run_to_end(axllm::Generation& gen) {
  axllm::StepResult r;
  do {
    r = gen.next();
  } while (r.finish == axllm::FinishReason::kNone);
  return r.finish;
}

}  // namespace

int main() {
  namespace fs = std::filesystem;
  const fs::path dir = axllm_test::write_model_dir("axllm_cancel");
  const axllm::ModelFiles files = axllm::discover_model_files(dir.string());
  constexpr int kLayers = 2, kPrefill = axllm_test::P, kNew = 4;

  axllm::GenerationConfig opts;
  opts.max_new_tokens = kNew;
  opts.temperature = 0.0f;
  const bool reuse_kv = false;  // each run rebuilds the cache, so the KV state is known exactly
  const std::vector<int32_t> prompt = {1,  2,  3,  4,  5,  6,  7,  8,  9,  10,
                                       11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  const int chunks = (static_cast<int>(prompt.size()) + kPrefill - 1) / kPrefill;

  axllm_test::Hooks hook;
  auto llm = axllm::Llm::load(std::make_shared<axllm_test::HookedBackend>(&hook), files);
  hook.on_trigger = [&llm] { llm->stop(); };
  auto reference = llm->generate(prompt, opts, reuse_kv);
  CHECK(run_to_end(*reference) == axllm::FinishReason::kLength);
  const std::vector<int32_t> want = reference->tokens();
  CHECK(static_cast<int>(want.size()) == kNew);

  // Prefill: stop after layer run k, inside chunk k / kLayers. The chunk in flight is abandoned at
  // the next layer boundary; chunks already finished stay in the cache.
  const int prefill_runs = chunks * kLayers;
  for (int k = 1; k < prefill_runs; ++k) {
    hook.runs = 0;
    hook.trigger = k;
    auto gen = llm->generate(prompt, opts, reuse_kv);
    const axllm::StepResult first = first_output(*gen);
    hook.trigger = -1;
    CHECK(first.finish == axllm::FinishReason::kCancelled);
    CHECK(first.token == -1 && gen->tokens().empty());
    const int done_chunks = k / kLayers;
    const size_t cached = std::min(prompt.size(), static_cast<size_t>(done_chunks * kPrefill));
    CHECK(llm->kv_tokens() == std::vector<int32_t>(prompt.begin(), prompt.begin() + cached));
    CHECK(hook.runs == k);
    auto again = llm->generate(prompt, opts, reuse_kv);
    CHECK(run_to_end(*again) == axllm::FinishReason::kLength);
    CHECK(again->tokens() == want);
  }

  // Stop after the whole prefill (s = 0) or after decode step s: the step that was running still
  // returns its token, the next one finishes cancelled, and the cache holds the prompt and every
  // token fed back.
  for (int s = 0; s < kNew - 1; ++s) {
    hook.runs = 0;
    hook.trigger = prefill_runs + s * kLayers;
    auto gen = llm->generate(prompt, opts, reuse_kv);
    const axllm::FinishReason why = run_to_end(*gen);
    hook.trigger = -1;
    CHECK(why == axllm::FinishReason::kCancelled);
    CHECK(static_cast<int>(gen->tokens().size()) == s + 1);
    CHECK(std::equal(gen->tokens().begin(), gen->tokens().end(), want.begin()));
    CHECK(llm->kv_tokens().size() == prompt.size() + static_cast<size_t>(s));
  }

  // A stop with nothing running does not cancel the next generation.
  llm->stop();
  auto after = llm->generate(prompt, opts, reuse_kv);
  CHECK(run_to_end(*after) == axllm::FinishReason::kLength && after->tokens() == want);

  fs::remove_all(dir);
  return axllm_test::finish("test_cancel");
}
