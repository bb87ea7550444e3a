// Layers in different placements (as on several AXCL cards) get their own hidden, mask and index
// buffers, and the hidden rows cross at each boundary: on the CPU engine, with placements given by
// a hooked backend, every split of four layers must generate exactly what one placement does,
// through chunked prefill with history groups, decode, and a second call reusing the cache.
#include <cstdio>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "axllm/backends.h"
#include "axllm/llm.h"
#include "check.h"
#include "hooked_backend.h"
#include "tiny_model_files.h"

namespace {

std::vector<int32_t> run(axllm::Llm& llm, const std::vector<int32_t>& prompt) {
  axllm::GenerationOptions opts;
  opts.max_new_tokens = 4;
  opts.sampling.temperature = 0.0f;
  auto gen = llm.generate(prompt, opts);
  while (gen->next().finish == axllm::FinishReason::kNone) {
  }
  return gen->tokens();
}

}  // namespace

int main() {
  namespace fs = std::filesystem;
  const fs::path dir = axllm_test::write_model_dir("axllm_placement", 4);
  const axllm::ModelFiles files = axllm::discover_model_files(dir.string());
  const std::vector<int32_t> first = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12};  // two prefill chunks (P = 8)
  std::vector<int32_t> want_first, want_second;
  const std::vector<std::function<int(int)>> splits = {
      {},                                  // one placement: the reference
      [](int l) { return l; },             // every layer on its own
      [](int l) { return l / 2; },         // two blocks of two
      [](int l) { return l == 3 ? 1 : 0; },  // three then one (post with the last)
      [](int l) { return l == 0 || l == 3 ? 0 : 1; },  // back to the first placement
  };
  for (size_t i = 0; i < splits.size(); ++i) {
    axllm_test::Hooks hooks;
    hooks.placement = splits[i];
    auto llm = axllm::Llm::load(std::make_shared<axllm_test::HookedBackend>(&hooks), files);
    const std::vector<int32_t> a = run(*llm, first);
    std::vector<int32_t> second = first;
    second.insert(second.end(), a.begin(), a.end());
    second.push_back(7);
    const std::vector<int32_t> b = run(*llm, second);
    if (i == 0) {
      want_first = a;
      want_second = b;
      CHECK(a.size() == 4 && b.size() == 4);
    } else {
      CHECK(a == want_first);
      CHECK(b == want_second);
    }
  }
  fs::remove_all(dir);
  return axllm_test::finish("test_placement");
}
