#include "axllm/llm.h"

#include <algorithm>
#include <stdexcept>
#include <string>

#include "axllm/errors.h"
#include "axllm/log.h"
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
    throw ModelLoadError(files.embeddings + ": tokens_embed_size " +
                         std::to_string(files.embed_width) +
                         " does not match the layers' hidden size " + std::to_string(g.hidden) +
                         " (" + files.layers[0] + ")");
  }
  llm->embeddings_ = std::make_unique<Embeddings>(files.embeddings, files.embed_rows, g.hidden);
  if (llm->embeddings_->rows() != g.vocab) {
    throw ModelLoadError(files.embeddings + ": the embedding table has " +
                         std::to_string(llm->embeddings_->rows()) + " rows but the post model " +
                         files.post + " produces " + std::to_string(g.vocab) + " logits");
  }
  llm->kv_ =
      std::make_unique<KvCache>(*backend, g.n_layers, llm->stack_->kv_rows(),
                                static_cast<size_t>(g.kv_dim) * dtype_size(g.io_dtype), g.kv_len);
  llm->stack_->bind_kv(*llm->kv_);
  llm->scratch_.reserve(static_cast<size_t>(g.prefill_len * g.hidden) * 4 + 64);
  return llm;
}

Llm::~Llm() = default;

std::unique_lock<std::mutex> Llm::lock_state() const {
  std::unique_lock<std::mutex> lock(mutex_, std::try_to_lock);
  if (!lock.owns_lock()) {
    throw BusyError(files_.root +
                    ": the model is running a call on another thread; calls on one model "
                    "must be serialized (axllm.LLM does this)");
  }
  check_open();
  return lock;
}

void Llm::check_open() const {
  if (closed_.load()) throw ClosedError(files_.root + " is closed");
}

void Llm::check_ids(std::span<const int32_t> ids, const char* what) const {
  for (int32_t t : ids) {
    if (t < 0 || t >= geometry_.vocab) {
      throw std::invalid_argument(std::string(what) + " token id " + std::to_string(t) +
                                  " is outside the vocabulary [0, " +
                                  std::to_string(geometry_.vocab) + ")");
    }
  }
}

void Llm::set_defaults(std::vector<int32_t> eos_ids, const SamplingParams& sampling) {
  check_ids(eos_ids, "EOS");
  validate(sampling);
  std::lock_guard<std::mutex> lock(control_mutex_);
  eos_ids_ = std::move(eos_ids);
  default_sampling_ = sampling;
}

std::vector<int32_t> Llm::eos_ids() const {
  std::lock_guard<std::mutex> lock(control_mutex_);
  return eos_ids_;
}

SamplingParams Llm::default_sampling() const {
  std::lock_guard<std::mutex> lock(control_mutex_);
  return default_sampling_;
}

std::vector<int32_t> Llm::kv_tokens() const {
  auto lock = lock_state();
  return kv_->tokens();
}

void Llm::reset() {
  auto lock = lock_state();
  serial_.fetch_add(1);  // a generation between steps would continue on rows that are gone
  kv_->rewind_to(std::min(pinned_, kv_->size()));
}

void Llm::rewind(int64_t n) {
  auto lock = lock_state();
  const int64_t droppable = kv_->size() - std::min(pinned_, kv_->size());
  if (n < 0 || n > droppable) {
    throw std::out_of_range("rewind(" + std::to_string(n) + "): " + std::to_string(droppable) +
                            " cached tokens can be dropped (" + std::to_string(kv_->size()) +
                            " cached, " + std::to_string(pinned_) + " pinned)");
  }
  serial_.fetch_add(1);
  kv_->rewind_to(kv_->size() - n);
}

void Llm::pin_prefix(int64_t n) {
  auto lock = lock_state();
  if (n < 0 || n > kv_->size()) {
    throw std::out_of_range("pin_prefix(" + std::to_string(n) + "): the cache holds " +
                            std::to_string(kv_->size()) + " tokens");
  }
  pinned_ = n;
}

int64_t Llm::pinned_prefix() const {
  auto lock = lock_state();
  return pinned_;
}

int64_t Llm::kv_size() const {
  auto lock = lock_state();
  return kv_->size();
}

KvSnapshot Llm::snapshot() const {
  auto lock = lock_state();
  KvSnapshot s;
  s.tokens = kv_->tokens();
  s.pinned = std::min(pinned_, kv_->size());
  const size_t bytes = kv_->row_offset(kv_->size());
  s.k.resize(static_cast<size_t>(geometry_.n_layers));
  s.v.resize(static_cast<size_t>(geometry_.n_layers));
  for (int l = 0; l < geometry_.n_layers; ++l) {
    s.k[l].resize(bytes);
    s.v[l].resize(bytes);
    if (bytes == 0) continue;
    kv_->k(l)->read(0, s.k[l].data(), bytes);
    kv_->v(l)->read(0, s.v[l].data(), bytes);
  }
  return s;
}

void Llm::restore(const KvSnapshot& snapshot) {
  auto lock = lock_state();
  const int64_t n = static_cast<int64_t>(snapshot.tokens.size());
  if (n > geometry_.kv_len) {
    throw ContextOverflowError(n, geometry_.kv_len,
                               "a cache of " + std::to_string(n) +
                                   " tokens does not fit the context of " +
                                   std::to_string(geometry_.kv_len));
  }
  if (static_cast<int>(snapshot.k.size()) != geometry_.n_layers ||
      static_cast<int>(snapshot.v.size()) != geometry_.n_layers) {
    throw std::invalid_argument("expected K and V rows for " + std::to_string(geometry_.n_layers) +
                                " layers");
  }
  const size_t bytes = kv_->row_offset(n);
  for (int l = 0; l < geometry_.n_layers; ++l) {
    if (snapshot.k[l].size() != bytes || snapshot.v[l].size() != bytes) {
      throw std::invalid_argument("layer " + std::to_string(l) + ": expected " +
                                  std::to_string(bytes) + " bytes of K and of V rows");
    }
  }
  check_ids(snapshot.tokens, "cached");
  if (snapshot.pinned < 0 || snapshot.pinned > n) {
    throw std::invalid_argument("pinned must be in [0, " + std::to_string(n) + "], got " +
                                std::to_string(snapshot.pinned));
  }
  serial_.fetch_add(1);
  for (int l = 0; l < geometry_.n_layers && bytes > 0; ++l) {
    kv_->k(l)->write(0, snapshot.k[l].data(), bytes);
    kv_->v(l)->write(0, snapshot.v[l].data(), bytes);
  }
  kv_->reset();
  kv_->append(snapshot.tokens);
  pinned_ = snapshot.pinned;
}

void Llm::extend(const std::vector<int32_t>& tokens) {
  auto lock = lock_state();
  check_ids(tokens, "prompt");
  if (kv_->size() + static_cast<int64_t>(tokens.size()) > geometry_.kv_len) {
    const int64_t need = kv_->size() + static_cast<int64_t>(tokens.size());
    throw ContextOverflowError(need, geometry_.kv_len,
                               std::to_string(need) + " tokens do not fit the context of " +
                                   std::to_string(geometry_.kv_len));
  }
  serial_.fetch_add(1);
  const std::atomic<bool> never{false};
  std::span<const int32_t> rest(tokens);
  while (!rest.empty())
    rest = rest.subspan(static_cast<size_t>(prefill_chunk(rest, never).consumed));
}

void Llm::close() {
  stop();
  std::lock_guard<std::mutex> lock(mutex_);  // waits for a step under way (it was just cancelled)
  if (closed_.exchange(true)) return;
  serial_.fetch_add(1);
  logits_ = {};
  stack_.reset();
  kv_.reset();
  embeddings_.reset();
  scratch_ = {};
}

bool Llm::closed() const { return closed_.load(); }

int Llm::prefill_group(int64_t history) const {
  const ModelGeometry& g = geometry_;
  int group = -1;
  for (int gi = 1; gi < g.n_groups; ++gi) {
    if (g.history_capacity[gi] >= history &&
        (group < 0 || g.history_capacity[gi] < g.history_capacity[group])) {
      group = gi;
    }
  }
  return group;
}

int64_t Llm::prefill_cost(int64_t h, int64_t n) const {
  const int64_t P = geometry_.prefill_len;
  const int64_t chunk_cost = std::max(kStepCost, P * kStepCost / 8);
  int64_t cost = 0;
  while (n > 0) {
    const int64_t m = std::min(P, n);
    cost += prefill_group(h) >= 0 ? chunk_cost : m * kStepCost;
    h += m;
    n -= m;
  }
  return cost;
}

size_t Llm::reusable_prefix(std::span<const int32_t> prompt) const {
  const auto& cached = kv_->tokens();
  size_t lcp = 0;
  while (lcp < cached.size() && lcp < prompt.size() && cached[lcp] == prompt[lcp]) ++lcp;
  lcp = std::min(lcp, prompt.size() - 1);
  if (lcp == 0) return 0;
  const int64_t n = static_cast<int64_t>(prompt.size());
  const int64_t floor = std::min<int64_t>(pinned_, static_cast<int64_t>(lcp));
  int64_t best = static_cast<int64_t>(lcp);
  int64_t best_cost = prefill_cost(best, n - best);
  // Shorter candidates in decreasing order; each must be strictly cheaper than the best so far.
  std::vector<int64_t> shorter;
  for (int gi = 1; gi < geometry_.n_groups; ++gi) {
    const int64_t cap = geometry_.history_capacity[gi];
    if (cap >= floor && cap < best) shorter.push_back(cap);
  }
  shorter.push_back(floor);
  std::sort(shorter.rbegin(), shorter.rend());
  for (int64_t k : shorter) {
    const int64_t cost = prefill_cost(k, n - k);
    if (cost < best_cost) {
      best = k;
      best_cost = cost;
    }
  }
  return static_cast<size_t>(best);
}

void Llm::stop() {
  std::lock_guard<std::mutex> lock(control_mutex_);
  if (current_cancel_) current_cancel_->store(true);
}

int64_t Llm::prompt_limit(const GenerationConfig& config) const {
  return axllm::prompt_limit(config, geometry_.kv_len);
}

std::vector<int32_t> Llm::fit_prompt(std::vector<int32_t> prompt,
                                     const GenerationConfig& config) const {
  check_open();
  if (prompt.empty())
    throw std::invalid_argument("prompt is empty: it must hold at least one token");
  check_ids(prompt, "prompt");
  return axllm::fit_prompt(std::move(prompt), config, geometry_.kv_len);
}

std::unique_ptr<Generation> Llm::generate(std::vector<int32_t> prompt,
                                          const GenerationConfig& config, bool reuse_kv) {
  check_open();
  config.validate();
  prompt = fit_prompt(std::move(prompt), config);
  auto cancel = std::make_shared<std::atomic<bool>>(false);
  SamplingParams sampling;
  std::vector<int32_t> eos;
  {
    std::lock_guard<std::mutex> lock(control_mutex_);
    sampling = resolve_sampling(config, default_sampling_);
    eos = eos_ids_;
    current_cancel_ = cancel;
  }
  const uint64_t serial = serial_.fetch_add(1) + 1;
  return std::make_unique<Generation>(shared_from_this(), std::move(prompt), std::move(eos), config,
                                      sampling, reuse_kv, serial, std::move(cancel));
}

Llm::Chunk Llm::prefill_chunk(std::span<const int32_t> tokens, const std::atomic<bool>& cancel) {
  const ModelGeometry& g = geometry_;
  Chunk out;
  if (cancel.load(std::memory_order_relaxed)) {
    out.cancelled = true;
    return out;
  }
  const int64_t h = kv_->size();
  const int group = prefill_group(h);
  const size_t m = std::min<size_t>(static_cast<size_t>(g.prefill_len), tokens.size());
  if (group < 0) {
    if (!warned_decode_prefill_) {
      warned_decode_prefill_ = true;
      const int64_t P = g.prefill_len;
      const int64_t rest = static_cast<int64_t>(tokens.size());
      const auto round_up = [&](int64_t x) { return std::min(g.kv_len, (x + P - 1) / P * P); };
      const int64_t lo = round_up(h);
      const int64_t hi = round_up(h + (rest - 1) / P * P);
      const std::string flags = lo == hi ? "--last_kv_cache_len " + std::to_string(lo)
                                         : "--last_kv_cache_len at every multiple of " +
                                               std::to_string(P) + " from " + std::to_string(lo) +
                                               " to " + std::to_string(hi);
      log(LogLevel::kWarning,
          files_.root + ": " + std::to_string(rest) + " prompt tokens after " + std::to_string(h) +
              " tokens in the KV cache go through decode steps (one token per engine run) "
              "because the build has no prefill group with a history of " +
              std::to_string(h) + " tokens or more; a build with " + flags + " prefills them in " +
              std::to_string(P) +
              "-token chunks (pulsar2 llm_build; python -m axllm.build makes such groups when the "
              "flag is left out). Logged once per model.");
    }
    for (size_t i = 0; i < m; ++i) {
      if (i > 0 && cancel.load(std::memory_order_relaxed)) {
        out.cancelled = true;
        return out;
      }
      embeddings_->write_rows(tokens.subspan(i, 1), g.io_dtype, stack_->input(), 0, scratch_);
      stack_->run_decode(kv_->size(), *kv_);
      kv_->append(tokens.subspan(i, 1));
      ++out.consumed;
      if (i + 1 == tokens.size()) logits_ = stack_->run_post(0);
    }
    return out;
  }
  embeddings_->write_rows(tokens.subspan(0, m), g.io_dtype, stack_->input(), 0, scratch_);
  if (!stack_->run_prefill(group, h, static_cast<int64_t>(m), *kv_, cancel)) {
    out.cancelled = true;
    return out;
  }
  kv_->append(tokens.subspan(0, m));
  out.consumed = static_cast<int64_t>(m);
  if (m == tokens.size()) logits_ = stack_->run_post(static_cast<int64_t>(m) - 1);
  return out;
}

void Llm::decode(int32_t token) {
  const int32_t ids[1] = {token};
  embeddings_->write_rows(ids, geometry_.io_dtype, stack_->input(), 0, scratch_);
  stack_->run_decode(kv_->size(), *kv_);
  kv_->append(ids);
  logits_ = stack_->run_post(0);
}

}  // namespace axllm
