#pragma once
// The LLM runtime: drives the layer models of a pulsar2-shaped build through the engine
// interface only (no engine-specific code), so one runtime serves the CPU engine and the NPUs.
#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <vector>

#include "axllm/embeddings.h"
#include "axllm/engine.h"
#include "axllm/generation.h"
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

class Generation;

// A loaded model. Thread-safe: steps of generations are serialized on an internal lock.
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
  // Tokens currently held in the KV cache.
  std::vector<int32_t> kv_tokens() const;

  // Starts a generation over `prompt`; the KV cache is rebuilt from it on the first step. A
  // generation started earlier and still running is superseded (it finishes as cancelled).
  // Throws std::invalid_argument for an empty prompt or bad options.
  std::unique_ptr<Generation> generate(std::vector<int32_t> prompt, GenerationOptions options);
  // Cancels the running generation, if any, at its next chunk or step boundary. Thread-safe.
  void stop();
  // Empties the KV cache, down to the pinned prefix (see pin_prefix).
  void reset();
  // Drops the last `n` cached tokens (clamped at the pinned prefix). Throws std::out_of_range when
  // n exceeds what can be dropped.
  void rewind(int64_t n);
  // The first `n` cached tokens survive reset() (a precomputed system prompt). 0 unpins.
  void pin_prefix(int64_t n);
  int64_t pinned_prefix() const;
  int64_t kv_size() const;

  // Raw K (or V) rows [0, rows) of `layer`, in the engine's layout and dtype.
  std::vector<uint8_t> read_kv(int layer, bool values, int64_t rows) const;
  // Replaces the cache: `tokens` and, per layer, their K and V rows (tokens.size() rows each,
  // layout and dtype as read_kv returns them). Throws std::invalid_argument on a size mismatch.
  void load_kv(const std::vector<int32_t>& tokens, const std::vector<std::vector<uint8_t>>& k,
               const std::vector<std::vector<uint8_t>>& v);
  // Prefills `tokens` after the cached ones without sampling (GIL-free precompute).
  void extend(const std::vector<int32_t>& tokens);

 private:
  friend class Generation;
  Llm() = default;

  // Prefill `tokens` after the rows already cached: P-token chunks in the smallest group whose
  // history capacity fits, decode steps where none does. Returns false if cancelled. `progress`
  // (may be empty) is called after each chunk or step, see GenerationOptions::prefill_progress.
  bool prefill(std::span<const int32_t> tokens, const std::atomic<bool>& cancel,
               const std::function<void(int64_t, int64_t)>& progress = {});
  // How many leading prompt tokens to keep from the cache: the longest common prefix (at most
  // prompt.size() - 1, so one token is left to compute logits), or 0 when a fresh prefill is
  // estimated to be faster than reusing it (from the run times measured so far).
  size_t reusable_prefix(std::span<const int32_t> prompt) const;
  // Estimated milliseconds to prefill n tokens after h cached ones (0 when nothing measured).
  double estimate_prefill_ms(int64_t h, int64_t n) const;
  // Feeds one token at the next row and computes its logits.
  void decode(int32_t token);
  std::span<const float> logits() const { return logits_; }

  ModelFiles files_;
  std::string backend_name_;
  ModelGeometry geometry_;
  std::unique_ptr<detail::LayerStack> stack_;
  std::unique_ptr<Embeddings> embeddings_;
  std::unique_ptr<KvCache> kv_;
  std::vector<uint8_t> scratch_;
  std::span<const float> logits_;
  // Holds mutex_ for one call. The thread already holding it (a prefill_progress callback that
  // calls back into the model) gets std::logic_error instead of a deadlock.
  class StateLock {
   public:
    explicit StateLock(const Llm& llm);
    ~StateLock();
    StateLock(const StateLock&) = delete;
    StateLock& operator=(const StateLock&) = delete;

   private:
    const Llm& llm_;
  };
  // Throws std::logic_error when this thread holds mutex_ (inside a step's callback).
  void refuse_reentry() const;
  mutable std::mutex mutex_;
  mutable std::atomic<std::thread::id> owner_{};
  std::atomic<uint64_t> serial_{0};
  int64_t pinned_ = 0;
  double step_ms_ = 0;                 // measured decode step time (moving average)
  std::vector<double> chunk_ms_;       // measured prefill chunk time per group
  std::shared_ptr<std::atomic<bool>> current_cancel_;
  std::mutex cancel_mutex_;
};

// One generation, pulled a step at a time. The first step prefills the prompt and samples the
// first token; each later step decodes the previous token and samples the next.
class Generation {
 public:
  Generation(std::shared_ptr<Llm> llm, std::vector<int32_t> prompt, GenerationOptions options,
             uint64_t serial, std::shared_ptr<std::atomic<bool>> cancel);

  // Runs one step. After a finish it keeps returning {-1, finish}. Throws ContextOverflowError
  // (first step) when the prompt does not fit the context, EngineError on engine failure.
  StepResult next();
  // Requests cancellation; honoured between prefill chunks, layers and decode steps.
  void cancel() { cancel_->store(true); }
  FinishReason finish_reason() const { return finish_; }
  const GenerationMetrics& metrics() const { return metrics_; }
  const std::vector<int32_t>& tokens() const { return generated_; }
  const std::vector<int32_t>& prompt() const { return prompt_; }

 private:
  StepResult finish(FinishReason reason, int32_t stop_token = -1);
  StepResult emit(int32_t token);
  bool is_eos(int32_t token) const;

  std::shared_ptr<Llm> llm_;
  std::vector<int32_t> prompt_;
  GenerationOptions options_;
  Sampler sampler_;
  uint64_t serial_;
  std::shared_ptr<std::atomic<bool>> cancel_;
  std::vector<int32_t> generated_;
  int32_t pending_ = -1;
  bool started_ = false;
  FinishReason finish_ = FinishReason::kNone;
  GenerationMetrics metrics_;
  double first_token_time_ = 0;
};

}  // namespace axllm
