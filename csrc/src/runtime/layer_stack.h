#pragma once
// The layer models and the post model of one LLM, bound once to shared buffers: hidden states
// ping-pong between two buffers (layer i reads one and writes the other), every group of a layer
// reads the same K/V buffers, and each run's K/V output rows are bound in place at the rows they
// belong to, so nothing is copied per token.
//
// The stack decides where each model runs: layer_placement() splits the layers over the
// backend's placements (the AXCL cards) in contiguous blocks, and the post model runs with the
// last layer. Each block of consecutive layers in one placement is a segment with its own hidden,
// mask and index buffers, bound first to its own layers so the engine places them there; the host
// writes masks and indices to every segment, and the hidden rows are copied once at each segment
// boundary.
#include <atomic>
#include <memory>
#include <span>
#include <vector>

#include "axllm/backend.h"
#include "axllm/kv_cache.h"
#include "axllm/llm.h"
#include "axllm/model_files.h"

namespace axllm::detail {

// The placement of each of `n_layers` layers on `n_placements` placements: contiguous blocks in
// placement order, base = n_layers / n_placements layers each, the first n_layers % n_placements
// placements one layer more (so more placements than layers leaves the last ones unused).
// Throws std::invalid_argument when n_placements < 1.
std::vector<int> layer_placement(int n_layers, int n_placements);

class LayerStack {
 public:
  // Loads every model in the placement layer_placement() gives it (the post model with the last
  // layer) and validates the set. Throws ModelLoadError naming the file at fault.
  LayerStack(Backend& backend, const ModelFiles& files, const Llm::Progress& progress);

  const ModelGeometry& geometry() const { return geometry_; }
  // Rows a KV buffer needs so any run can bind its output rows in place.
  int64_t kv_rows() const;
  // Binds every group's K_cache/V_cache to `kv`'s buffers. Call once, before any run.
  void bind_kv(const KvCache& kv);
  // The buffer the first layer reads: the caller writes the chunk's embedding rows there.
  Buffer& input() { return *segments_.front().hidden[0]; }

  // Prefill group `group` (>= 1): rows [0, n) of input() are the tokens at positions
  // [history, history + n). Returns false when `cancel` is set between layers.
  bool run_prefill(int group, int64_t history, int64_t n, const KvCache& kv,
                   const std::atomic<bool>& cancel);
  // Decode group 0 for the token in row 0 of input() at position `pos` (rows [0, pos) valid).
  void run_decode(int64_t pos, const KvCache& kv);
  // Runs the post model on row `row` of the last layer's output; returns fp32 logits.
  std::span<const float> run_post(int64_t row);

 private:
  void set_decode_open(int64_t n);
  void write_mask_value(uint8_t* dst, bool open) const;
  void bind_outputs_at(int group, int64_t row, const KvCache& kv);
  // Runs layer l of `group`, first copying `rows` hidden rows in from the previous segment when
  // layer l starts a segment.
  void run_layer(size_t l, int group, int64_t rows);

  struct Segment {
    std::shared_ptr<Buffer>
        hidden[2];  // layer l reads hidden[l % 2] and writes hidden[(l + 1) % 2]
    std::vector<std::shared_ptr<Buffer>> indices;  // per group
    std::vector<std::shared_ptr<Buffer>> masks;    // per group
  };
  using SegmentBuffers = std::vector<std::shared_ptr<Buffer>> Segment::*;
  // Writes `n` bytes at `offset` of `group`'s mask or index buffer in every segment.
  void write_to_segments(SegmentBuffers which, int group, size_t offset, const void* src, size_t n);

  std::vector<std::unique_ptr<Model>> layers_;
  std::unique_ptr<Model> post_;
  std::vector<std::string> files_;
  ModelGeometry geometry_;
  size_t esz_ = 0;
  std::vector<Segment> segments_;
  std::vector<size_t> segment_of_;  // per layer
  std::shared_ptr<Buffer> logits_buffer_;
  std::vector<uint8_t> logits_raw_;
  DType logits_dtype_ = DType::kFP32;
  std::vector<float> logits_;
  std::vector<uint8_t> mask_scratch_;
  std::vector<uint32_t> index_scratch_;
  int64_t decode_open_ = 0;
  uint16_t blocked16_ = 0;
};

}  // namespace axllm::detail
