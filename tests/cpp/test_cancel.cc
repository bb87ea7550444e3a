// Cancel at every point of a prefill and of a decode, deterministically: a backend wrapping the
// CPU engine calls Llm::stop() right after its k-th layer run, for every k. Each cancelled
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
#include "tiny_model_files.h"

namespace {

// Counts runs of the layer models (the post model is not counted) and calls a hook after each.
struct RunHook {
  int runs = 0;
  int trigger = -1;  // after this many runs, call on_trigger (once); -1 never
  std::function<void()> on_trigger;
  void after_run() {
    if (++runs == trigger && on_trigger) on_trigger();
  }
};

class HookedModel : public axllm::Model {
 public:
  HookedModel(std::unique_ptr<axllm::Model> inner, RunHook* hook) : inner_(std::move(inner)), hook_(hook) {}
  const std::string& path() const override { return inner_->path(); }
  const std::vector<axllm::GroupSpec>& groups() const override { return inner_->groups(); }
  void bind(int group, std::string_view tensor, std::shared_ptr<axllm::Buffer> buffer, size_t offset) override {
    inner_->bind(group, tensor, std::move(buffer), offset);
  }
  void run(int group) override {
    inner_->run(group);
    if (hook_) hook_->after_run();
  }

 private:
  std::unique_ptr<axllm::Model> inner_;
  RunHook* hook_;
};

class HookedBackend : public axllm::Backend {
 public:
  explicit HookedBackend(RunHook* hook) : inner_(axllm::cpu_backend()), hook_(hook) {}
  std::string name() const override { return inner_->name(); }
  std::unique_ptr<axllm::Model> load_model(const std::string& path) override {
    const bool is_post = path.find("_post.") != std::string::npos;
    return std::make_unique<HookedModel>(inner_->load_model(path), is_post ? nullptr : hook_);
  }
  std::shared_ptr<axllm::Buffer> allocate(size_t bytes) override { return inner_->allocate(bytes); }

 private:
  std::shared_ptr<axllm::Backend> inner_;
  RunHook* hook_;
};

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

  axllm::GenerationOptions opts;
  opts.max_new_tokens = kNew;
  opts.sampling.temperature = 0.0f;
  opts.reuse_kv = false;  // each run rebuilds the cache, so the KV state is known exactly
  const std::vector<int32_t> prompt = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20};
  const int chunks = (static_cast<int>(prompt.size()) + kPrefill - 1) / kPrefill;

  RunHook hook;
  auto llm = axllm::Llm::load(std::make_shared<HookedBackend>(&hook), files);
  hook.on_trigger = [&llm] { llm->stop(); };
  auto reference = llm->generate(prompt, opts);
  CHECK(run_to_end(*reference) == axllm::FinishReason::kLength);
  const std::vector<int32_t> want = reference->tokens();
  CHECK(static_cast<int>(want.size()) == kNew);

  // Prefill: stop after layer run k, inside chunk k / kLayers. The chunk in flight is abandoned at
  // the next layer boundary; chunks already finished stay in the cache.
  const int prefill_runs = chunks * kLayers;
  for (int k = 1; k < prefill_runs; ++k) {
    hook.runs = 0;
    hook.trigger = k;
    auto gen = llm->generate(prompt, opts);
    const axllm::StepResult first = gen->next();
    hook.trigger = -1;
    CHECK(first.finish == axllm::FinishReason::kCancelled);
    CHECK(first.token == -1 && gen->tokens().empty());
    const int done_chunks = k / kLayers;
    const size_t cached = std::min(prompt.size(), static_cast<size_t>(done_chunks * kPrefill));
    CHECK(llm->kv_tokens() == std::vector<int32_t>(prompt.begin(), prompt.begin() + cached));
    CHECK(hook.runs == k);
    auto again = llm->generate(prompt, opts);
    CHECK(run_to_end(*again) == axllm::FinishReason::kLength);
    CHECK(again->tokens() == want);
  }

  // Stop after the whole prefill (s = 0) or after decode step s: the step that was running still
  // returns its token, the next one finishes cancelled, and the cache holds the prompt and every
  // token fed back.
  for (int s = 0; s < kNew - 1; ++s) {
    hook.runs = 0;
    hook.trigger = prefill_runs + s * kLayers;
    auto gen = llm->generate(prompt, opts);
    const axllm::FinishReason why = run_to_end(*gen);
    hook.trigger = -1;
    CHECK(why == axllm::FinishReason::kCancelled);
    CHECK(static_cast<int>(gen->tokens().size()) == s + 1);
    CHECK(std::equal(gen->tokens().begin(), gen->tokens().end(), want.begin()));
    CHECK(llm->kv_tokens().size() == prompt.size() + static_cast<size_t>(s));
  }

  // A stop with nothing running does not cancel the next generation.
  llm->stop();
  auto after = llm->generate(prompt, opts);
  CHECK(run_to_end(*after) == axllm::FinishReason::kLength && after->tokens() == want);

  fs::remove_all(dir);
  return axllm_test::finish("test_cancel");
}
