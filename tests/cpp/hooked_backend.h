#pragma once
// The host backend with test hooks: a callback after the k-th layer run (counting runs of every
// layer model, not of the post model), a callback before every layer run given its group (to
// slow some runs down), and any number of placements (as if the backend drove
// several AXCL cards) with a record of the placement each model was loaded in, so runtime paths
// the host engine alone never takes run here.
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "axllm/backend.h"
#include "axllm/backends.h"

namespace axllm_test {

struct Hooks {
  int runs = 0;
  int trigger = -1;  // after this many layer runs, call on_trigger (once); -1 never
  std::function<void()> on_trigger;
  std::function<void(int group)> before_run;  // before every layer run, when set
  int placements = 1;  // what the backend reports as num_placements()
  std::vector<std::pair<std::string, int>> loads;  // (file name, placement) per load_model
  void after_run() {
    if (++runs == trigger && on_trigger) on_trigger();
  }
};

class HookedModel : public axllm::Model {
 public:
  HookedModel(std::unique_ptr<axllm::Model> inner, Hooks* hooks, bool count_runs)
      : inner_(std::move(inner)), hooks_(hooks), count_runs_(count_runs) {}
  const std::string& path() const override { return inner_->path(); }
  const std::vector<axllm::GroupSpec>& groups() const override { return inner_->groups(); }
  void bind(int group, std::string_view tensor, std::shared_ptr<axllm::Buffer> buffer,
            size_t offset) override {
    inner_->bind(group, tensor, std::move(buffer), offset);
  }
  void run(int group) override {
    if (count_runs_ && hooks_->before_run) hooks_->before_run(group);
    inner_->run(group);
    if (count_runs_) hooks_->after_run();
  }

 private:
  std::unique_ptr<axllm::Model> inner_;
  Hooks* hooks_;
  bool count_runs_;
};

// Every placement is the one host engine: buffers are shared whatever the placement, so a split
// must change nothing in what is computed.
class HookedBackend : public axllm::Backend {
 public:
  explicit HookedBackend(Hooks* hooks) : inner_(axllm::host_backend()), hooks_(hooks) {}
  std::string name() const override { return inner_->name(); }
  int num_placements() const override { return hooks_->placements; }
  std::unique_ptr<axllm::Model> load_model(const std::string& path, int placement) override {
    axllm::check_placement(*this, path, placement);
    const bool is_post = path.find("_post.") != std::string::npos;
    hooks_->loads.emplace_back(path.substr(path.find_last_of('/') + 1), placement);
    return std::make_unique<HookedModel>(inner_->load_model(path, 0), hooks_, !is_post);
  }
  std::shared_ptr<axllm::Buffer> allocate(size_t bytes) override { return inner_->allocate(bytes); }

 private:
  std::shared_ptr<axllm::Backend> inner_;
  Hooks* hooks_;
};

}  // namespace axllm_test
