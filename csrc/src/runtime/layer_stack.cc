#include "runtime/layer_stack.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>

#include "axllm/errors.h"

namespace axllm::detail {
namespace {

const TensorSpec& spec(const std::vector<TensorSpec>& specs, const char* name, int group,
                       const std::string& file) {
  const int i = find_tensor(specs, name, group);
  if (i < 0) {
    throw ModelLoadError(file + ": shape group " + std::to_string(group) + " has no tensor '" +
                         name + "'");
  }
  return specs[static_cast<size_t>(i)];
}

void expect_shape(const TensorSpec& t, std::vector<int64_t> shape, int group,
                  const std::string& file) {
  if (t.shape != shape) {
    throw ModelLoadError(file + ": group " + std::to_string(group) + " tensor '" + t.name +
                         "' has shape " + shape_string(t.shape) + ", expected " +
                         shape_string(shape));
  }
}

bool same_specs(const std::vector<TensorSpec>& a, const std::vector<TensorSpec>& b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i].name != b[i].name || a[i].shape != b[i].shape || a[i].dtype != b[i].dtype)
      return false;
  }
  return true;
}

}  // namespace

std::vector<int> layer_placement(int n_layers, int n_placements) {
  if (n_placements < 1) {
    throw std::invalid_argument("a backend needs at least one placement, it reports " +
                                std::to_string(n_placements));
  }
  std::vector<int> out;
  const int base = n_layers / n_placements;
  const int extra = n_layers % n_placements;
  for (int p = 0; p < n_placements; ++p) {
    for (int k = 0; k < base + (p < extra ? 1 : 0); ++k) out.push_back(p);
  }
  return out;
}

LayerStack::LayerStack(Backend& backend, const ModelFiles& files, const Llm::Progress& progress) {
  const int total = static_cast<int>(files.layers.size()) + 1;
  const std::vector<int> placement =
      layer_placement(static_cast<int>(files.layers.size()), backend.num_placements());
  for (size_t i = 0; i < files.layers.size(); ++i) {
    layers_.push_back(backend.load_model(files.layers[i], placement[i]));
    files_.push_back(files.layers[i]);
    if (progress) progress(static_cast<int>(i) + 1, total);
  }
  post_ = backend.load_model(files.post, placement.empty() ? 0 : placement.back());
  if (progress) progress(total, total);

  const std::string& f0 = files_[0];
  const auto& groups = layers_[0]->groups();
  if (groups.size() < 2) {
    throw ModelLoadError(f0 + ": a layer model needs a decode group and a prefill group, it has " +
                         std::to_string(groups.size()));
  }
  for (size_t i = 1; i < layers_.size(); ++i) {
    const auto& gi = layers_[i]->groups();
    bool same = gi.size() == groups.size();
    for (size_t g = 0; same && g < gi.size(); ++g) {
      same = same_specs(gi[g].inputs, groups[g].inputs) &&
             same_specs(gi[g].outputs, groups[g].outputs);
    }
    if (!same) {
      throw ModelLoadError(files_[i] + ": its shape groups or tensors differ from layer 0 (" + f0 +
                           ")");
    }
  }
  ModelGeometry& g = geometry_;
  g.n_layers = static_cast<int>(layers_.size());
  g.n_groups = static_cast<int>(groups.size());
  const TensorSpec& in0 = spec(groups[0].inputs, "input", 0, f0);
  const TensorSpec& mask0 = spec(groups[0].inputs, "mask", 0, f0);
  const TensorSpec& kout0 = spec(groups[0].outputs, "K_cache_out", 0, f0);
  if (in0.shape.size() != 3 || mask0.shape.size() != 3 || kout0.shape.size() != 3) {
    throw ModelLoadError(f0 + ": decode group tensors must be rank 3");
  }
  g.hidden = in0.shape[2];
  g.kv_len = mask0.shape[2] - 1;
  g.kv_dim = kout0.shape[2];
  g.io_dtype = in0.dtype;
  esz_ = dtype_size(g.io_dtype);
  expect_shape(in0, {1, 1, g.hidden}, 0, f0);
  expect_shape(spec(groups[0].inputs, "indices", 0, f0), {1, 1}, 0, f0);
  expect_shape(spec(groups[0].inputs, "K_cache", 0, f0), {1, g.kv_len, g.kv_dim}, 0, f0);
  expect_shape(spec(groups[0].inputs, "V_cache", 0, f0), {1, g.kv_len, g.kv_dim}, 0, f0);
  expect_shape(spec(groups[0].outputs, "output", 0, f0), {1, 1, g.hidden}, 0, f0);
  g.prefill_len = spec(groups[1].inputs, "indices", 1, f0).shape.back();
  g.history_capacity.assign(groups.size(), 0);
  g.history_capacity[0] = g.kv_len;
  const int64_t P = g.prefill_len;
  for (int gi = 1; gi < g.n_groups; ++gi) {
    const auto& ins = groups[gi].inputs;
    const auto& outs = groups[gi].outputs;
    expect_shape(spec(ins, "indices", gi, f0), {1, P}, gi, f0);
    expect_shape(spec(ins, "input", gi, f0), {1, P, g.hidden}, gi, f0);
    expect_shape(spec(outs, "output", gi, f0), {1, P, g.hidden}, gi, f0);
    expect_shape(spec(outs, "K_cache_out", gi, f0), {1, P, g.kv_dim}, gi, f0);
    expect_shape(spec(outs, "V_cache_out", gi, f0), {1, P, g.kv_dim}, gi, f0);
    const TensorSpec& m = spec(ins, "mask", gi, f0);
    if (m.shape.size() != 3 || m.shape[1] != P || m.shape[2] < P) {
      throw ModelLoadError(f0 + ": group " + std::to_string(gi) + " mask has shape " +
                           shape_string(m.shape) + ", expected [1," + std::to_string(P) + ",H_g+" +
                           std::to_string(P) + "]");
    }
    g.history_capacity[gi] = m.shape[2] - P;
    if (g.history_capacity[gi] > g.kv_len) {
      throw ModelLoadError(f0 + ": group " + std::to_string(gi) + " history capacity " +
                           std::to_string(g.history_capacity[gi]) + " exceeds the context " +
                           std::to_string(g.kv_len));
    }
    for (const char* kv : {"K_cache", "V_cache"}) {
      const TensorSpec& t = spec(ins, kv, gi, f0);
      if (t.bytes > static_cast<size_t>(kv_rows()) * g.kv_dim * esz_) {
        throw ModelLoadError(f0 + ": group " + std::to_string(gi) + " " + kv + " " +
                             shape_string(t.shape) + " is larger than the KV cache");
      }
    }
  }
  if (P > g.kv_len) {
    throw ModelLoadError(f0 + ": prefill length " + std::to_string(P) + " exceeds the context " +
                         std::to_string(g.kv_len));
  }
  const auto& pg = post_->groups();
  if (pg.empty()) throw ModelLoadError(files.post + ": the post model has no shape group");
  const TensorSpec& pin = spec(pg[0].inputs, "input", 0, files.post);
  const TensorSpec& pout = spec(pg[0].outputs, "output", 0, files.post);
  if (pin.shape != std::vector<int64_t>{1, 1, g.hidden} || pin.dtype != g.io_dtype) {
    throw ModelLoadError(files.post + ": input is " + dtype_name(pin.dtype) +
                         shape_string(pin.shape) + " but the layers produce " +
                         dtype_name(g.io_dtype) + "[1,1," + std::to_string(g.hidden) + "]");
  }
  if (pout.shape.size() != 3 || pout.shape[1] != 1) {
    throw ModelLoadError(files.post + ": output has shape " + shape_string(pout.shape) +
                         ", expected [1,1,V]");
  }
  if (pout.dtype != DType::kBF16 && pout.dtype != DType::kFP16 && pout.dtype != DType::kFP32) {
    throw ModelLoadError(files.post + ": logits dtype " + dtype_name(pout.dtype) +
                         " is not supported");
  }
  g.vocab = pout.shape[2];

  size_t hidden_bytes = 0;
  for (const auto& grp : groups) {
    hidden_bytes = std::max({hidden_bytes, spec(grp.inputs, "input", 0, f0).bytes,
                             spec(grp.outputs, "output", 0, f0).bytes});
  }
  blocked16_ = g.io_dtype == DType::kBF16 ? float_to_bf16(-65536.0f) : float_to_fp16(-65504.0f);
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (l == 0 || placement[l] != placement[l - 1]) {
      Segment seg;
      seg.hidden[0] = backend.allocate(hidden_bytes);
      seg.hidden[1] = backend.allocate(hidden_bytes);
      for (int gi = 0; gi < g.n_groups; ++gi) {
        seg.indices.push_back(backend.allocate(spec(groups[gi].inputs, "indices", gi, f0).bytes));
        seg.masks.push_back(backend.allocate(spec(groups[gi].inputs, "mask", gi, f0).bytes));
      }
      segments_.push_back(std::move(seg));
    }
    segment_of_.push_back(segments_.size() - 1);
    const Segment& seg = segments_.back();
    Model& m = *layers_[l];
    for (int gi = 0; gi < g.n_groups; ++gi) {
      m.bind(gi, "indices", seg.indices[static_cast<size_t>(gi)]);
      m.bind(gi, "mask", seg.masks[static_cast<size_t>(gi)]);
      m.bind(gi, "input", seg.hidden[l % 2]);
      m.bind(gi, "output", seg.hidden[(l + 1) % 2]);
    }
  }
  const Segment& s0 = segments_.front();
  mask_scratch_.resize(std::max<size_t>(s0.masks[0]->size(), 1));
  for (int gi = 1; gi < g.n_groups; ++gi) {
    mask_scratch_.resize(std::max(mask_scratch_.size(), s0.masks[static_cast<size_t>(gi)]->size()));
  }
  index_scratch_.resize(static_cast<size_t>(P));
  const size_t c1 = static_cast<size_t>(g.kv_len + 1);
  for (size_t i = 0; i < c1; ++i) write_mask_value(mask_scratch_.data() + i * esz_, i == c1 - 1);
  write_to_segments(&Segment::masks, 0, 0, mask_scratch_.data(), c1 * esz_);
  decode_open_ = 0;
  logits_buffer_ = backend.allocate(pout.bytes);
  post_->bind(0, "output", logits_buffer_);
  logits_raw_.resize(pout.bytes);
  logits_dtype_ = pout.dtype;
  logits_.resize(static_cast<size_t>(g.vocab));
}

int64_t LayerStack::kv_rows() const {
  int64_t cap = geometry_.kv_len;
  for (int64_t h : geometry_.history_capacity) cap = std::max(cap, h);
  return cap + geometry_.prefill_len;
}

void LayerStack::bind_kv(const KvCache& kv) {
  for (size_t l = 0; l < layers_.size(); ++l) {
    for (int gi = 0; gi < geometry_.n_groups; ++gi) {
      layers_[l]->bind(gi, "K_cache", kv.k(static_cast<int>(l)));
      layers_[l]->bind(gi, "V_cache", kv.v(static_cast<int>(l)));
      layers_[l]->bind(gi, "K_cache_out", kv.k(static_cast<int>(l)));
      layers_[l]->bind(gi, "V_cache_out", kv.v(static_cast<int>(l)));
    }
  }
}

void LayerStack::write_mask_value(uint8_t* dst, bool open) const {
  if (geometry_.io_dtype == DType::kFP32) {
    const float v = open ? 0.0f : -65536.0f;
    std::memcpy(dst, &v, sizeof v);
  } else {
    const uint16_t v = open ? 0 : blocked16_;
    std::memcpy(dst, &v, sizeof v);
  }
}

void LayerStack::bind_outputs_at(int group, int64_t row, const KvCache& kv) {
  const size_t off = kv.row_offset(row);
  for (size_t l = 0; l < layers_.size(); ++l) {
    layers_[l]->bind(group, "K_cache_out", kv.k(static_cast<int>(l)), off);
    layers_[l]->bind(group, "V_cache_out", kv.v(static_cast<int>(l)), off);
  }
}

bool LayerStack::run_prefill(int group, int64_t history, int64_t n, const KvCache& kv,
                             const std::atomic<bool>& cancel) {
  const int64_t P = geometry_.prefill_len;
  const int64_t cap = geometry_.history_capacity[group];
  const int64_t width = cap + P;
  for (int64_t i = 0; i < P; ++i) {
    index_scratch_[i] = i < n ? static_cast<uint32_t>(history + i) : 0u;
  }
  write_to_segments(&Segment::indices, group, 0, index_scratch_.data(),
                    static_cast<size_t>(P) * sizeof(uint32_t));
  for (int64_t r = 0; r < P; ++r) {
    uint8_t* row = mask_scratch_.data() + static_cast<size_t>(r * width) * esz_;
    for (int64_t c = 0; c < width; ++c) {
      const bool open = r < n && (c < history || (c >= cap && c <= cap + r));
      write_mask_value(row + c * esz_, open);
    }
  }
  write_to_segments(&Segment::masks, group, 0, mask_scratch_.data(),
                    static_cast<size_t>(P * width) * esz_);
  bind_outputs_at(group, history, kv);
  for (size_t l = 0; l < layers_.size(); ++l) {
    if (cancel.load(std::memory_order_relaxed)) return false;
    run_layer(l, group, n);
  }
  return true;
}

void LayerStack::set_decode_open(int64_t n) {
  if (n == decode_open_) return;
  const int64_t lo = std::min(n, decode_open_);
  const int64_t hi = std::max(n, decode_open_);
  for (int64_t i = lo; i < hi; ++i)
    write_mask_value(mask_scratch_.data() + (i - lo) * esz_, n > decode_open_);
  write_to_segments(&Segment::masks, 0, static_cast<size_t>(lo) * esz_, mask_scratch_.data(),
                    static_cast<size_t>(hi - lo) * esz_);
  decode_open_ = n;
}

void LayerStack::run_decode(int64_t pos, const KvCache& kv) {
  set_decode_open(pos);
  const uint32_t idx = static_cast<uint32_t>(pos);
  write_to_segments(&Segment::indices, 0, 0, &idx, sizeof idx);
  bind_outputs_at(0, pos, kv);
  for (size_t l = 0; l < layers_.size(); ++l) run_layer(l, 0, 1);
}

void LayerStack::write_to_segments(SegmentBuffers which, int group, size_t offset, const void* src,
                                   size_t n) {
  for (Segment& seg : segments_) (seg.*which)[static_cast<size_t>(group)]->write(offset, src, n);
}

void LayerStack::run_layer(size_t l, int group, int64_t rows) {
  const size_t s = segment_of_[l];
  if (l > 0 && segment_of_[l - 1] != s) {
    const size_t bytes = static_cast<size_t>(rows * geometry_.hidden) * esz_;
    segments_[s].hidden[l % 2]->copy_from(*segments_[s - 1].hidden[l % 2], 0, 0, bytes);
  }
  layers_[l]->run(group);
}

std::span<const float> LayerStack::run_post(int64_t row) {
  const auto& last = segments_.back().hidden[layers_.size() % 2];
  post_->bind(0, "input", last, static_cast<size_t>(row * geometry_.hidden) * esz_);
  post_->run(0);
  logits_buffer_->read(0, logits_raw_.data(), logits_raw_.size());
  to_float(logits_dtype_, logits_raw_.data(), logits_.data(), logits_.size());
  return logits_;
}

}  // namespace axllm::detail
