#include "axllm/llm.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>

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
  llm->chunk_ms_.assign(static_cast<size_t>(g.n_groups), 0.0);
  llm->scratch_.reserve(static_cast<size_t>(g.prefill_len * g.hidden) * 4 + 64);
  return llm;
}

Llm::~Llm() = default;

void Llm::refuse_reentry() const {
  if (owner_.load() == std::this_thread::get_id()) {
    throw std::logic_error(
        "the model is running a step on this thread: it cannot be used from inside a "
        "prefill_progress callback (stop() is the one call allowed there)");
  }
}

Llm::StateLock::StateLock(const Llm& llm) : llm_(llm) {
  llm.refuse_reentry();
  llm.mutex_.lock();
  llm.owner_.store(std::this_thread::get_id());
}

Llm::StateLock::~StateLock() {
  llm_.owner_.store(std::thread::id());
  llm_.mutex_.unlock();
}

std::vector<int32_t> Llm::kv_tokens() const {
  StateLock lock(*this);
  return kv_->tokens();
}

namespace {
double since_ms(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}
void update_average(double& avg, double sample) { avg = avg == 0 ? sample : 0.7 * avg + 0.3 * sample; }
}  // namespace

void Llm::reset() {
  StateLock lock(*this);
  kv_->rewind_to(std::min(pinned_, kv_->size()));
}

void Llm::rewind(int64_t n) {
  StateLock lock(*this);
  const int64_t droppable = kv_->size() - std::min(pinned_, kv_->size());
  if (n < 0 || n > droppable) {
    throw std::out_of_range("rewind(" + std::to_string(n) + "): " + std::to_string(droppable) +
                            " cached tokens can be dropped (" + std::to_string(kv_->size()) +
                            " cached, " + std::to_string(pinned_) + " pinned)");
  }
  kv_->rewind_to(kv_->size() - n);
}

void Llm::pin_prefix(int64_t n) {
  StateLock lock(*this);
  if (n < 0 || n > kv_->size()) {
    throw std::out_of_range("pin_prefix(" + std::to_string(n) + "): the cache holds " +
                            std::to_string(kv_->size()) + " tokens");
  }
  pinned_ = n;
}

int64_t Llm::pinned_prefix() const {
  StateLock lock(*this);
  return pinned_;
}

int64_t Llm::kv_size() const {
  StateLock lock(*this);
  return kv_->size();
}

std::vector<uint8_t> Llm::read_kv(int layer, bool values, int64_t rows) const {
  StateLock lock(*this);
  if (layer < 0 || layer >= geometry_.n_layers) {
    throw std::invalid_argument("layer " + std::to_string(layer) + " is out of range");
  }
  if (rows < 0 || rows > kv_->size()) {
    throw std::invalid_argument("rows " + std::to_string(rows) + ": the cache holds " +
                                std::to_string(kv_->size()));
  }
  std::vector<uint8_t> out(kv_->row_offset(rows));
  (values ? kv_->v(layer) : kv_->k(layer))->read(0, out.data(), out.size());
  return out;
}

void Llm::load_kv(const std::vector<int32_t>& tokens, const std::vector<std::vector<uint8_t>>& k,
                  const std::vector<std::vector<uint8_t>>& v) {
  StateLock lock(*this);
  const int64_t n = static_cast<int64_t>(tokens.size());
  if (n > geometry_.kv_len) {
    throw ContextOverflowError(n, geometry_.kv_len, "a cache of " + std::to_string(n) +
                                                        " tokens does not fit the context of " +
                                                        std::to_string(geometry_.kv_len));
  }
  if (static_cast<int>(k.size()) != geometry_.n_layers || static_cast<int>(v.size()) != geometry_.n_layers) {
    throw std::invalid_argument("expected K and V rows for " + std::to_string(geometry_.n_layers) + " layers");
  }
  const size_t bytes = kv_->row_offset(n);
  for (int l = 0; l < geometry_.n_layers; ++l) {
    if (k[l].size() != bytes || v[l].size() != bytes) {
      throw std::invalid_argument("layer " + std::to_string(l) + ": expected " + std::to_string(bytes) +
                                  " bytes of K and of V rows");
    }
  }
  for (int t : tokens) {
    if (t < 0 || t >= geometry_.vocab) throw std::invalid_argument("token id " + std::to_string(t) + " is outside the vocabulary");
  }
  serial_.fetch_add(1);
  for (int l = 0; l < geometry_.n_layers; ++l) {
    kv_->k(l)->write(0, k[l].data(), bytes);
    kv_->v(l)->write(0, v[l].data(), bytes);
  }
  kv_->reset();
  kv_->append(tokens);
  pinned_ = std::min(pinned_, n);
}

void Llm::extend(const std::vector<int32_t>& tokens) {
  StateLock lock(*this);
  for (int t : tokens) {
    if (t < 0 || t >= geometry_.vocab) throw std::invalid_argument("token id " + std::to_string(t) + " is outside the vocabulary");
  }
  if (kv_->size() + static_cast<int64_t>(tokens.size()) > geometry_.kv_len) {
    const int64_t need = kv_->size() + static_cast<int64_t>(tokens.size());
    throw ContextOverflowError(need, geometry_.kv_len, std::to_string(need) + " tokens do not fit the context of " +
                                                           std::to_string(geometry_.kv_len));
  }
  serial_.fetch_add(1);
  const std::atomic<bool> never{false};
  if (!tokens.empty()) prefill(tokens, never);
}

double Llm::estimate_prefill_ms(int64_t h, int64_t n) const {
  const ModelGeometry& g = geometry_;
  double total = 0;
  while (n > 0) {
    int group = -1;
    for (int gi = 1; gi < g.n_groups; ++gi) {
      if (g.history_capacity[gi] >= h && (group < 0 || g.history_capacity[gi] < g.history_capacity[group])) {
        group = gi;
      }
    }
    if (group < 0) {
      if (step_ms_ == 0) return 0;
      return total + static_cast<double>(n) * step_ms_;
    }
    if (chunk_ms_[group] == 0) return 0;
    total += chunk_ms_[group];
    const int64_t m = std::min(g.prefill_len, n);
    h += m;
    n -= m;
  }
  return total;
}

size_t Llm::reusable_prefix(std::span<const int32_t> prompt) const {
  const auto& cached = kv_->tokens();
  size_t lcp = 0;
  while (lcp < cached.size() && lcp < prompt.size() && cached[lcp] == prompt[lcp]) ++lcp;
  lcp = std::min(lcp, prompt.size() - 1);
  if (lcp == 0) return 0;
  const int64_t n = static_cast<int64_t>(prompt.size());
  const double reuse = estimate_prefill_ms(static_cast<int64_t>(lcp), n - static_cast<int64_t>(lcp));
  const double fresh = estimate_prefill_ms(0, n);
  // A fresh prefill must be clearly faster (10 %) before the cached rows are thrown away.
  if (reuse > 0 && fresh > 0 && fresh < 0.9 * reuse) return 0;
  return lcp;
}

void Llm::stop() {
  std::lock_guard<std::mutex> lock(cancel_mutex_);
  if (current_cancel_) current_cancel_->store(true);
}

std::unique_ptr<Generation> Llm::generate(std::vector<int32_t> prompt, GenerationOptions options) {
  refuse_reentry();  // starting a generation does not take the lock but supersedes the running one
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

bool Llm::prefill(std::span<const int32_t> tokens, const std::atomic<bool>& cancel,
                  const std::function<void(int64_t, int64_t)>& progress) {
  const ModelGeometry& g = geometry_;
  const int64_t total = static_cast<int64_t>(tokens.size());
  size_t i = 0;
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
        const auto t0 = std::chrono::steady_clock::now();
        stack_->run_decode(kv_->size(), *kv_);
        update_average(step_ms_, since_ms(t0));
        kv_->append(tokens.subspan(i, 1));
        if (last) logits_ = stack_->run_post(0);
        if (progress) progress(static_cast<int64_t>(i) + 1, total);
      }
      return true;
    }
    const size_t m = std::min<size_t>(static_cast<size_t>(g.prefill_len), tokens.size() - i);
    embeddings_->write_rows(tokens.subspan(i, m), g.io_dtype, stack_->input(), 0, scratch_);
    const auto t0 = std::chrono::steady_clock::now();
    if (!stack_->run_prefill(group, h, static_cast<int64_t>(m), *kv_, cancel)) return false;
    update_average(chunk_ms_[static_cast<size_t>(group)], since_ms(t0));
    kv_->append(tokens.subspan(i, m));
    i += m;
    if (i == tokens.size()) logits_ = stack_->run_post(static_cast<int64_t>(m) - 1);
    if (progress) progress(static_cast<int64_t>(i), total);
  }
  return true;
}

void Llm::decode(int32_t token) {
  const int32_t ids[1] = {token};
  embeddings_->write_rows(ids, geometry_.io_dtype, stack_->input(), 0, scratch_);
  const auto t0 = std::chrono::steady_clock::now();
  stack_->run_decode(kv_->size(), *kv_);
  update_average(step_ms_, since_ms(t0));
  kv_->append(ids);
  logits_ = stack_->run_post(0);
}

}  // namespace axllm
