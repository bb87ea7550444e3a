// The runtime decides where each model runs: layer_placement splits the layers over a backend's
// placements in contiguous blocks (the first L % n placements one layer more), the post model goes
// with the last layer, and each block gets its own hidden, mask and index buffers with the hidden
// rows crossing at each boundary. On the host engine, with a hooked backend reporting 1..5
// placements for four layers, every split must load each model where the rule says and generate
// exactly what one placement does, through chunked prefill with history groups, decode, and a
// second call reusing the cache.
#include <cstdio>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "axllm/backends.h"
#include "axllm/llm.h"
#include "check.h"
#include "hooked_backend.h"
#include "runtime/layer_stack.h"
#include "tiny_model_files.h"

namespace {

std::vector<int32_t> run(axllm::Llm& llm, const std::vector<int32_t>& prompt) {
  axllm::GenerationConfig opts;
  opts.max_new_tokens = 4;
  opts.temperature = 0.0f;
  auto gen = llm.generate(prompt, opts);
  while (gen->next().finish == axllm::FinishReason::kNone) {
  }
  return gen->tokens();
}

template <class F>
bool throws_out_of_range(F f) {
  try {
    f();
  } catch (const std::out_of_range&) {
    return true;
  } catch (...) {
  }
  return false;
}

}  // namespace

int main() {
  namespace fs = std::filesystem;
  using axllm::detail::layer_placement;
  using V = std::vector<int>;

  CHECK(layer_placement(4, 1) == V({0, 0, 0, 0}));
  CHECK(layer_placement(3, 2) == V({0, 0, 1}));
  CHECK(layer_placement(4, 3) == V({0, 0, 1, 2}));
  CHECK(layer_placement(7, 3) == V({0, 0, 0, 1, 1, 2, 2}));
  CHECK(layer_placement(2, 5) == V({0, 1}));
  CHECK(layer_placement(0, 2).empty());
  bool refused = false;
  try {
    layer_placement(4, 0);
  } catch (const std::invalid_argument&) {
    refused = true;
  }
  CHECK(refused);

  const fs::path dir = axllm_test::write_model_dir("axllm_placement", 4);
  const axllm::ModelFiles files = axllm::discover_model_files(dir.string());
  CHECK(throws_out_of_range([&] { axllm::host_backend()->load_model(files.post, 1); }));
  CHECK(throws_out_of_range([&] { axllm::host_backend()->load_model(files.post, -1); }));

  const std::vector<int32_t> first = {1, 2, 3, 4,  5,  6,
                                      7, 8, 9, 10, 11, 12};  // two prefill chunks (P = 8)
  std::vector<int32_t> want_first, want_second;
  for (int n = 1; n <= 5; ++n) {
    axllm_test::Hooks hooks;
    hooks.placements = n;
    auto llm = axllm::Llm::load(std::make_shared<axllm_test::HookedBackend>(&hooks), files);

    const std::vector<int> want = layer_placement(4, n);
    std::vector<std::pair<std::string, int>> expected;
    for (int l = 0; l < 4; ++l)
      expected.emplace_back("llama_p8_l" + std::to_string(l) + "_together.hostmodel", want[l]);
    expected.emplace_back("llama_post.hostmodel", want.back());
    CHECK(hooks.loads == expected);
    if (hooks.loads != expected) {
      for (const auto& [file, p] : hooks.loads)
        std::printf("  %d placements: %s -> %d\n", n, file.c_str(), p);
    }

    const std::vector<int32_t> a = run(*llm, first);
    std::vector<int32_t> second = first;
    second.insert(second.end(), a.begin(), a.end());
    second.push_back(7);
    const std::vector<int32_t> b = run(*llm, second);
    if (n == 1) {
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
