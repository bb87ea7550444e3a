// Prefix reuse does not depend on timing: one multi-turn conversation, run on a model whose
// decode steps are slowed, one whose prefill chunks are slowed and an unslowed one, keeps the same
// cached tokens each turn (the ones the shape cost model of llm.h gives) and generates what a
// model without reuse generates. The build (P=8, C=24, one history group of 8) lacks groups past
// 8, so turn 3 prefills in decode steps and the fallback warning is logged, once.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "axllm/backends.h"
#include "axllm/llm.h"
#include "axllm/log.h"
#include "check.h"
#include "hooked_backend.h"
#include "tiny_model_files.h"

namespace {

struct Turn {
  int64_t cached = 0;
  std::vector<int32_t> tokens;
};

// Each turn's prompt is the previous prompt, the reply and two new tokens; 3 tokens per reply.
std::vector<Turn> converse(const axllm::ModelFiles& files, axllm_test::Hooks& hooks, bool reuse) {
  auto llm = axllm::Llm::load(std::make_shared<axllm_test::HookedBackend>(&hooks), files);
  axllm::GenerationConfig config;
  config.max_new_tokens = 3;
  config.temperature = 0.0f;
  std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
  std::vector<Turn> turns;
  for (int t = 0; t < 3; ++t) {
    auto gen = llm->generate(prompt, config, reuse);
    axllm::StepResult r;
    do {
      r = gen->next();
    } while (r.finish == axllm::FinishReason::kNone);
    CHECK(r.finish == axllm::FinishReason::kLength);
    turns.push_back({gen->metrics().cached_tokens, gen->tokens()});
    prompt.insert(prompt.end(), gen->tokens().begin(), gen->tokens().end());
    prompt.push_back(static_cast<int32_t>(11 + 2 * t));
    prompt.push_back(static_cast<int32_t>(12 + 2 * t));
  }
  return turns;
}

void sleep_ms(int ms) { std::this_thread::sleep_for(std::chrono::milliseconds(ms)); }

}  // namespace

int main() {
  namespace fs = std::filesystem;
  const fs::path dir = axllm_test::write_model_dir("axllm_prefix_reuse", 2, "8");
  const axllm::ModelFiles files = axllm::discover_model_files(dir.string());
  std::vector<std::string> warnings;
  axllm::set_log_sink([&warnings](axllm::LogLevel level, const std::string& message) {
    if (level == axllm::LogLevel::kWarning) warnings.push_back(message);
  });

  axllm_test::Hooks plain;
  const std::vector<Turn> want = converse(files, plain, true);
  CHECK(warnings.size() == 1);
  if (!warnings.empty()) {
    CHECK(warnings[0].find("history of 17 tokens or more; a build with --last_kv_cache_len 24 ") !=
          std::string::npos);
  }
  // Turn 2 (15 tokens, 12 cached) keeps 8: one chunk from the group of 8 beats 3 decode steps
  // after 12. Turn 3 (20 tokens, 17 cached) keeps all 17: 3 decode steps are the cheapest.
  CHECK(want.size() == 3);
  CHECK(want[0].cached == 0);
  CHECK(want[1].cached == 8);
  CHECK(want[2].cached == 17);

  axllm_test::Hooks no_reuse;
  const std::vector<Turn> scratch = converse(files, no_reuse, false);
  axllm_test::Hooks slow_steps;
  slow_steps.before_run = [](int group) {
    if (group == 0) sleep_ms(5);
  };
  axllm_test::Hooks slow_chunks;
  slow_chunks.before_run = [](int group) {
    if (group > 0) sleep_ms(5);
  };
  for (axllm_test::Hooks* hooks : {&slow_steps, &slow_chunks}) {
    const std::vector<Turn> got = converse(files, *hooks, true);
    CHECK(got.size() == want.size());
    for (size_t t = 0; t < got.size() && t < want.size(); ++t) {
      CHECK(got[t].cached == want[t].cached);
      CHECK(got[t].tokens == scratch[t].tokens);
    }
  }
  axllm::set_log_sink({});
  fs::remove_all(dir);
  return axllm_test::finish("test_prefix_reuse");
}
