#pragma once
// The LLM runtime: drives the layer models of a pulsar2-shaped build through the engine
// interface only (no engine-specific code), so one runtime serves the host engine and the NPUs.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <vector>

#include "axllm/backend.h"
#include "axllm/embeddings.h"
#include "axllm/generation.h"
#include "axllm/generation_config.h"
#include "axllm/kv_cache.h"
#include "axllm/model_files.h"

namespace axllm {

namespace detail {
class LayerStack;
}

// What the models' IO info says (never constants).
struct ModelGeometry {
  int n_layers = 0;
  int n_groups = 0;
  int64_t hidden = 0;       // H
  int64_t kv_dim = 0;       // D
  int64_t kv_len = 0;       // C, the context length
  int64_t prefill_len = 0;  // P
  int64_t vocab = 0;        // V, post model logits
  std::vector<int64_t> history_capacity;  // per group: [0] = C (decode), [1] = 0, [2+k] = H_k
  DType io_dtype = DType::kBF16;
};

// The KV cache at one moment: token ids and, per layer, their raw K and V rows (tokens.size() rows
// each, in the engine's layout and dtype), and how many leading tokens are pinned.
struct KvSnapshot {
  std::vector<int32_t> tokens;
  std::vector<std::vector<uint8_t>> k;
  std::vector<std::vector<uint8_t>> v;
  int64_t pinned = 0;
};

// A loaded model. Every call that reads or changes the model's state holds its mutex for the call
// (a generation holds it for one step, not between steps); a call made while another thread holds
// it throws BusyError instead of waiting: callers that share a model serialize their calls
// (axllm.LLM does, and decides the order). stop() and generate() never take it. After close(),
// every such call throws ClosedError.
class Llm : public std::enable_shared_from_this<Llm> {
 public:
  // progress(done, total) is called after each model file loads.
  using Progress = std::function<void(int, int)>;

  // Loads every model file through `backend` and validates the set: same groups and tensors in
  // every layer, embedding width and rows against the layers and the post model. Throws
  // ModelLoadError naming the file at fault.
  static std::shared_ptr<Llm> load(std::shared_ptr<Backend> backend, const ModelFiles& files,
                                   const Progress& progress = {});
  ~Llm();

  const ModelGeometry& geometry() const { return geometry_; }
  const ModelFiles& files() const { return files_; }
  const std::string& backend_name() const { return backend_name_; }

  // The model's own generation defaults: the EOS ids that end a generation, and the sampling used
  // when a GenerationConfig sets no sampling field (greedy until set). Throws std::invalid_argument
  // for an id outside the vocabulary or invalid sampling parameters.
  void set_defaults(std::vector<int32_t> eos_ids, const SamplingParams& sampling);
  std::vector<int32_t> eos_ids() const;
  SamplingParams default_sampling() const;

  // Prompt tokens a generation under `config` accepts (see axllm::prompt_limit).
  int64_t prompt_limit(const GenerationConfig& config) const;
  // `prompt` checked (ids in the vocabulary, not empty) and fitted to the context per
  // config.overflow (see axllm::fit_prompt). Throws std::invalid_argument, ContextOverflowError.
  std::vector<int32_t> fit_prompt(std::vector<int32_t> prompt,
                                  const GenerationConfig& config) const;

  // Starts a generation over fit_prompt(prompt, config); the KV cache is rebuilt from it on the
  // first step, reusing the longest common prefix with what it holds when `reuse_kv`. A generation
  // started earlier and still running is superseded (it finishes as cancelled). Throws what
  // fit_prompt and config.validate() throw, and ClosedError.
  std::unique_ptr<Generation> generate(std::vector<int32_t> prompt,
                                       const GenerationConfig& config = {}, bool reuse_kv = true);
  // Cancels the running generation, if any, at its next chunk, layer or step boundary. Thread-safe.
  void stop();
  // reset, rewind, restore and extend end a generation that is between steps (it finishes as
  // cancelled at its next step), since they change the rows it continues from.
  // Empties the KV cache, down to the pinned prefix (see pin_prefix).
  void reset();
  // Drops the last `n` cached tokens (clamped at the pinned prefix). Throws std::out_of_range when
  // n exceeds what can be dropped.
  void rewind(int64_t n);
  // The first `n` cached tokens survive reset() (a precomputed system prompt). 0 unpins.
  void pin_prefix(int64_t n);
  int64_t pinned_prefix() const;
  int64_t kv_size() const;
  // Tokens currently held in the KV cache.
  std::vector<int32_t> kv_tokens() const;
  // The cache's tokens and rows, read under one lock (consistent with each other).
  KvSnapshot snapshot() const;
  // Replaces the cache and the pinned prefix with `snapshot` (validated whole before anything
  // changes). Throws std::invalid_argument on a size mismatch, an id outside the vocabulary or a
  // pinned count outside [0, tokens], ContextOverflowError when it does not fit.
  void restore(const KvSnapshot& snapshot);
  // Prefills `tokens` after the cached ones without sampling (a precomputed system prompt).
  void extend(const std::vector<int32_t>& tokens);
  // Cancels the running generation, waits for its step to end and frees every engine model and
  // buffer. Idempotent.
  void close();
  bool closed() const;

 private:
  friend class Generation;
  Llm() = default;

  // Holds mutex_ for a call: BusyError when another thread holds it, ClosedError after close().
  std::unique_lock<std::mutex> lock_state() const;
  // Throws ClosedError after close().
  void check_open() const;
  struct Chunk {
    int64_t consumed = 0;    // leading tokens run and appended to the cache
    bool cancelled = false;  // cancel was seen before all of them ran
  };
  // Runs the next chunk of `tokens` after the cached rows: up to P tokens through prefill_group(),
  // else (no group holds the history) up to P decode steps, logging a warning naming the build
  // flag that would add the group, once per model. Computes the logits of the last token when the
  // chunk consumes all of `tokens`.
  Chunk prefill_chunk(std::span<const int32_t> tokens, const std::atomic<bool>& cancel);
  // The smallest prefill group whose history capacity holds `history` cached rows, -1 if none.
  int prefill_group(int64_t history) const;
  // Prefix reuse is decided from the build's shapes only, never from measured times, so one
  // conversation keeps the same cached tokens on a busy and an idle machine.
  //
  // Cost model: prefill_cost(h, n) counts the engine runs prefill_chunk makes to prefill n tokens
  // after h cached ones, in units of one decode step (one row through every layer): a decode
  // step costs kStepCost, a prefill chunk (P rows in one pass over the weights, P padded rows
  // whatever the chunk's length) costs max(kStepCost, P * kStepCost / 8), i.e. a chunk runs in the
  // time of P/8 decode steps. That ratio is fixed (the host engine on 2 cores runs a chunk of
  // Qwen2.5-0.5B in about 19 decode steps' time, 0.6 s against 33 ms; NPUs, whose decode steps are
  // bound by weight reads, in fewer), so the cost depends on P and the groups alone.
  int64_t prefill_cost(int64_t h, int64_t n) const;
  // How many leading prompt tokens to keep from the cache. Candidates: the longest common prefix
  // L with the cache (at most prompt.size() - 1, so one token is left to compute logits), each
  // group's history capacity below L (the rest then prefills from where that group starts) and 0
  // (a fresh prefill), none below the pinned prefix. The cheapest by prefill_cost() wins; a
  // shorter candidate must be strictly cheaper, so a prefix after which the rest prefills in
  // chunks is always kept whole (it needs no more chunks than any shorter candidate).
  size_t reusable_prefix(std::span<const int32_t> prompt) const;
  // Feeds one token at the next row and computes its logits.
  void decode(int32_t token);
  std::span<const float> logits() const { return logits_; }
  void check_ids(std::span<const int32_t> ids, const char* what) const;

  ModelFiles files_;
  std::string backend_name_;
  ModelGeometry geometry_;
  std::unique_ptr<detail::LayerStack> stack_;
  std::unique_ptr<Embeddings> embeddings_;
  std::unique_ptr<KvCache> kv_;
  std::vector<uint8_t> scratch_;
  std::span<const float> logits_;
  std::vector<int32_t> eos_ids_;
  SamplingParams default_sampling_ = [] {
    SamplingParams p;
    p.temperature = 0.0f;
    return p;
  }();
  mutable std::mutex mutex_;
  std::atomic<bool> closed_{false};
  std::atomic<uint64_t> serial_{0};
  int64_t pinned_ = 0;
  bool warned_decode_prefill_ = false;  // the decode-step fallback warning was logged
  std::shared_ptr<std::atomic<bool>> current_cancel_;
  mutable std::mutex control_mutex_;  // guards current_cancel_, eos_ids_ and default_sampling_
  static constexpr int64_t kStepCost = 8;  // prefill_cost() of one decode step
};

}  // namespace axllm
