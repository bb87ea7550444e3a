// The LLM runtime without Python: a tiny model directory written here loads through discovery,
// generates through the host engine, and a decode step allocates no heap memory.
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <new>
#include <string>

#include "axllm/backends.h"
#include "axllm/errors.h"
#include "axllm/llm.h"
#include "check.h"
#include "tiny_model_files.h"

static std::atomic<long> g_allocations{0};
static std::atomic<bool> g_trace{false};
static size_t g_sizes[16];

void* operator new(size_t n) {
  const long k = g_allocations++;
  if (g_trace.load() && k >= 0) g_sizes[static_cast<size_t>(k) % 16] = n;
  if (void* p = std::malloc(n ? n : 1)) return p;
  throw std::bad_alloc();
}
void operator delete(void* p) noexcept { std::free(p); }
void operator delete(void* p, size_t) noexcept { std::free(p); }

int main() {
  namespace fs = std::filesystem;
  const fs::path dir = axllm_test::write_model_dir("axllm_runtime_alloc");

  const axllm::ModelFiles files = axllm::discover_model_files(dir.string());
  CHECK(files.layers.size() == 2);
  auto llm = axllm::Llm::load(axllm::select_backend("auto", files.layers.at(0)), files);
  CHECK(llm->geometry().kv_len == 24 && llm->geometry().prefill_len == 8);
  CHECK(llm->geometry().history_capacity.size() == 4);

  axllm::GenerationConfig opts;
  opts.max_new_tokens = 12;
  opts.temperature = 0.0f;
  auto gen = llm->generate({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, opts);
  CHECK(gen->next().prefill_done == 8);  // the first prefill chunk (P = 8)
  CHECK(gen->next().token >= 0);         // the rest of the prompt and the first token
  gen->next();                           // the first decode step (may size scratch buffers)
  const long before = g_allocations.load();
  g_trace = true;
  int steps = 0;
  while (gen->next().finish == axllm::FinishReason::kNone) ++steps;
  const long during = g_allocations.load() - before;
  g_trace = false;
  for (long i = 0; i < during && i < 16; ++i)
    std::printf("allocation of %zu bytes\n", g_sizes[(before + i) % 16]);
  std::printf("allocations during %d decode steps: %ld\n", steps + 1, during);
  CHECK(steps + 1 == 10);
  CHECK(during == 0);
  CHECK(gen->finish_reason() == axllm::FinishReason::kLength);
  CHECK(gen->tokens().size() == 12);
  CHECK(llm->kv_tokens().size() == 11 + 11);

  auto again = llm->generate({1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}, opts);
  while (again->next().finish == axllm::FinishReason::kNone) {
  }
  CHECK(again->tokens() == gen->tokens());

  bool threw = false;
  try {
    auto big = llm->generate(std::vector<int32_t>(25, 1), opts);
    big->next();
  } catch (const axllm::ContextOverflowError& e) {
    threw = e.needed() == 25 && e.available() == 24;
  }
  CHECK(threw);
  fs::remove_all(dir);
  return axllm_test::finish("test_runtime_alloc");
}
