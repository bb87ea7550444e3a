#include "axllm/llm.h"

#include <algorithm>

#include "axllm/errors.h"
#include "runtime/layer_stack.h"

namespace axllm {

std::shared_ptr<Llm> Llm::load(std::shared_ptr<Backend> backend, const ModelFiles& files,
                               const Progress& progress) {
  std::shared_ptr<Llm> llm(new Llm());
  llm->files_ = files;
  llm->backend_name_ = backend->name();
  llm->stack_ = std::make_unique<detail::LayerStack>(*backend, files, progress);
  llm->geometry_ = llm->stack_->geometry();
  const ModelGeometry& g = llm->geometry_;
  if (files.embed_width > 0 && files.embed_width != g.hidden) {
    throw ModelLoadError(files.embeddings + ": tokens_embed_size " + std::to_string(files.embed_width) +
                         " does not match the layers' hidden size " + std::to_string(g.hidden) +
                         " (" + files.layers[0] + ")");
  }
  llm->embeddings_ = std::make_unique<Embeddings>(files.embeddings, files.embed_rows, g.hidden);
  if (llm->embeddings_->rows() != g.vocab) {
    throw ModelLoadError(files.embeddings + ": the embedding table has " +
                         std::to_string(llm->embeddings_->rows()) + " rows but the post model " +
                         files.post + " produces " + std::to_string(g.vocab) + " logits");
  }
  llm->kv_ = std::make_unique<KvCache>(*backend, g.n_layers, llm->stack_->kv_rows(),
                                       static_cast<size_t>(g.kv_dim) * dtype_size(g.io_dtype),
                                       g.kv_len);
  llm->stack_->bind_kv(*llm->kv_);
  llm->scratch_.reserve(static_cast<size_t>(g.prefill_len * g.hidden) * 4 + 64);
  return llm;
}

Llm::~Llm() = default;

std::vector<int32_t> Llm::kv_tokens() const {
  std::lock_guard<std::mutex> lock(const_cast<std::mutex&>(mutex_));
  return kv_->tokens();
}

void Llm::reset() {
  std::lock_guard<std::mutex> lock(mutex_);
  kv_->reset();
}

void Llm::stop() {
  std::lock_guard<std::mutex> lock(cancel_mutex_);
  if (current_cancel_) current_cancel_->store(true);
}

std::unique_ptr<Generation> Llm::generate(std::vector<int32_t> prompt, GenerationOptions options) {
  if (prompt.empty()) throw std::invalid_argument("prompt must contain at least one token");
  for (int32_t t : prompt) {
    if (t < 0 || t >= geometry_.vocab) {
      throw std::invalid_argument("prompt token id " + std::to_string(t) + " is outside the vocabulary [0, " +
                                  std::to_string(geometry_.vocab) + ")");
    }
  }
  if (options.max_new_tokens == 0) throw std::invalid_argument("max_new_tokens must be positive (or < 0 for no limit)");
  validate(options.sampling);
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  {
    std::lock_guard<std::mutex> lock(cancel_mutex_);
    current_cancel_ = cancel;
  }
  const uint64_t serial = serial_.fetch_add(1) + 1;
  return std::make_unique<Generation>(shared_from_this(), std::move(prompt), std::move(options), serial,
                                      std::move(cancel));
}

bool Llm::prefill(std::span<const int32_t> tokens, const std::atomic<bool>& cancel) {
  const ModelGeometry& g = geometry_;
  size_t i = 0;
  int64_t last_row = 0;
  while (i < tokens.size()) {
    if (cancel.load(std::memory_order_relaxed)) return false;
    const int64_t h = kv_->size();
    int group = -1;
    for (int gi = 1; gi < g.n_groups; ++gi) {
      if (g.history_capacity[gi] >= h && (group < 0 || g.history_capacity[gi] < g.history_capacity[group])) {
        group = gi;
      }
    }
    if (group < 0) {
      for (; i < tokens.size(); ++i) {
        if (cancel.load(std::memory_order_relaxed)) return false;
        const bool last = i + 1 == tokens.size();
        embeddings_->write_rows(tokens.subspan(i, 1), g.io_dtype, stack_->input(), 0, scratch_);
        stack_->run_decode(kv_->size(), *kv_);
        kv_->append(tokens.subspan(i, 1));
        if (last) logits_ = stack_->run_post(0);
      }
      return true;
    }
    const size_t m = std::min<size_t>(static_cast<size_t>(g.prefill_len), tokens.size() - i);
    embeddings_->write_rows(tokens.subspan(i, m), g.io_dtype, stack_->input(), 0, scratch_);
    if (!stack_->run_prefill(group, h, static_cast<int64_t>(m), *kv_, cancel)) return false;
    kv_->append(tokens.subspan(i, m));
    i += m;
    last_row = static_cast<int64_t>(m) - 1;
  }
  logits_ = stack_->run_post(last_row);
  return true;
}

void Llm::decode(int32_t token) {
  const int32_t ids[1] = {token};
  embeddings_->write_rows(ids, geometry_.io_dtype, stack_->input(), 0, scratch_);
  stack_->run_decode(kv_->size(), *kv_);
  kv_->append(ids);
  logits_ = stack_->run_post(0);
}

}  // namespace axllm
