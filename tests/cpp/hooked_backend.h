#pragma once
// The CPU backend with test hooks on its layer models: a callback after the k-th layer run
// (counting runs of every layer model, not of the post model) and a placement per layer (as if
// layers sat on different AXCL cards), so runtime paths the CPU engine alone never takes run here.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "axllm/backends.h"
#include "axllm/engine.h"

namespace axllm_test {

struct Hooks {
  int runs = 0;
  int trigger = -1;  // after this many layer runs, call on_trigger (once); -1 never
  std::function<void()> on_trigger;
  std::function<int(int layer)> placement;  // empty: every model in placement 0
  void after_run() {
    if (++runs == trigger && on_trigger) on_trigger();
  }
};

class HookedModel : public axllm::Model {
 public:
  HookedModel(std::unique_ptr<axllm::Model> inner, Hooks* hooks, bool count_runs, int placement)
      : inner_(std::move(inner)), hooks_(hooks), count_runs_(count_runs), placement_(placement) {}
  const std::string& path() const override { return inner_->path(); }
  const std::vector<axllm::GroupSpec>& groups() const override { return inner_->groups(); }
  void bind(int group, std::string_view tensor, std::shared_ptr<axllm::Buffer> buffer, size_t offset) override {
    inner_->bind(group, tensor, std::move(buffer), offset);
  }
  void run(int group) override {
    inner_->run(group);
    if (count_runs_) hooks_->after_run();
  }
  int placement() const override { return placement_; }

 private:
  std::unique_ptr<axllm::Model> inner_;
  Hooks* hooks_;
  bool count_runs_;
  int placement_;
};

// Layer models are numbered in load order (the runtime loads layers 0..n-1, then the post model,
// which gets the last layer's placement).
class HookedBackend : public axllm::Backend {
 public:
  explicit HookedBackend(Hooks* hooks) : inner_(axllm::cpu_backend()), hooks_(hooks) {}
  std::string name() const override { return inner_->name(); }
  std::unique_ptr<axllm::Model> load_model(const std::string& path) override {
    const bool is_post = path.find("_post.") != std::string::npos;
    const int layer = is_post ? layers_ - 1 : layers_++;
    const int placement = hooks_->placement ? hooks_->placement(layer) : 0;
    return std::make_unique<HookedModel>(inner_->load_model(path), hooks_, !is_post, placement);
  }
  std::shared_ptr<axllm::Buffer> allocate(size_t bytes) override { return inner_->allocate(bytes); }

 private:
  std::shared_ptr<axllm::Backend> inner_;
  Hooks* hooks_;
  int layers_ = 0;
};

}  // namespace axllm_test
