#include "host/decoder_layer.h"

#include <cmath>
#include <cstring>
#include <limits>

#include "axllm/errors.h"
#include "host/kernels.h"

namespace axllm::detail {
namespace {

// Workspace slots used by a layer run.
enum Slot : size_t {
  kMask,
  kX,
  kNorm,
  kQ,
  kK,
  kV,
  kAttn,
  kTmp,
  kGate,
  kUp,
  kKeys,
  kValues,
  kMaskKeys,
  kScores,
  kRope,
};
enum IntSlot : size_t { kOpenCols, kRowOpen };

void apply_rope(float* x, int64_t n_heads, int64_t head_dim, const float* cos_sin) {
  const int64_t half = head_dim / 2;
  for (int64_t h = 0; h < n_heads; ++h) {
    float* v = x + h * head_dim;
    for (int64_t j = 0; j < half; ++j) {
      const float c = cos_sin[j];
      const float s = cos_sin[half + j];
      const float a = v[j];
      const float b = v[j + half];
      v[j] = a * c - b * s;
      v[j + half] = b * c + a * s;
    }
  }
}

}  // namespace

void rms_norm(const float* x, const float* weight, float eps, int64_t rows, int64_t n, float* out) {
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * n;
    float* o = out + r * n;
    float ss = 0.0f;
    for (int64_t i = 0; i < n; ++i) ss += xr[i] * xr[i];
    const float inv = 1.0f / std::sqrt(ss / static_cast<float>(n) + eps);
    for (int64_t i = 0; i < n; ++i) o[i] = weight[i] * (xr[i] * inv);
  }
}

DecoderLayer::Linear DecoderLayer::linear(const HostModelFile& f, const std::string& name,
                                          int64_t rows, int64_t cols) const {
  Linear l;
  l.rows = rows;
  l.cols = cols;
  l.w = f.get(name + ".weight", {w_dtype_}, {rows, cols}).data;
  if (f.has(name + ".bias")) {
    l.bias = reinterpret_cast<const float*>(f.get(name + ".bias", {DType::kFP32}, {rows}).data);
  }
  return l;
}

DecoderLayer::DecoderLayer(const HostModelFile& f) {
  const auto& h = f.header();
  io_dtype_ = h.io_dtype;
  w_dtype_ = h.weight_dtype;
  hidden_ = h.hidden_size;
  n_heads_ = h.num_heads;
  n_kv_heads_ = h.num_kv_heads;
  head_dim_ = h.head_dim;
  ffn_ = h.intermediate_size;
  eps_ = static_cast<float>(h.rms_norm_eps);
  rope_scaling_ = static_cast<float>(h.attention_scaling);
  const int64_t qd = n_heads_ * head_dim_;
  const int64_t kvd = n_kv_heads_ * head_dim_;
  auto vec = [&](const std::string& name, int64_t n) {
    return reinterpret_cast<const float*>(f.get(name, {DType::kFP32}, {n}).data);
  };
  ln1_ = vec("input_layernorm.weight", hidden_);
  ln2_ = vec("post_attention_layernorm.weight", hidden_);
  inv_freq_ = vec("rope.inv_freq", head_dim_ / 2);
  q_ = linear(f, "self_attn.q_proj", qd, hidden_);
  k_ = linear(f, "self_attn.k_proj", kvd, hidden_);
  v_ = linear(f, "self_attn.v_proj", kvd, hidden_);
  o_ = linear(f, "self_attn.o_proj", hidden_, qd);
  gate_ = linear(f, "mlp.gate_proj", ffn_, hidden_);
  up_ = linear(f, "mlp.up_proj", ffn_, hidden_);
  down_ = linear(f, "mlp.down_proj", hidden_, ffn_);
}

void DecoderLayer::reserve(Workspace& ws, int64_t max_rows, int64_t max_width,
                           int n_threads) const {
  const size_t n = static_cast<size_t>(std::max<int64_t>(max_rows, 1));
  const size_t keys = static_cast<size_t>(max_width);
  const size_t qd = static_cast<size_t>(n_heads_ * head_dim_);
  const size_t kvd = static_cast<size_t>(n_kv_heads_ * head_dim_);
  const size_t h = static_cast<size_t>(hidden_);
  const size_t f = static_cast<size_t>(ffn_);
  ws.floats(kMask, n * keys);
  ws.ints(kRowOpen, n);
  ws.ints(kOpenCols, keys);
  ws.floats(kX, n * h);
  ws.floats(kNorm, n * h);
  ws.floats(kQ, n * qd);
  ws.floats(kK, n * kvd);
  ws.floats(kV, n * kvd);
  ws.floats(kAttn, n * qd);
  ws.floats(kTmp, n * h);
  ws.floats(kGate, n * f);
  ws.floats(kUp, n * f);
  ws.floats(kRope, static_cast<size_t>(head_dim_));
  ws.floats(kKeys, keys * kvd);
  ws.floats(kValues, keys * kvd);
  ws.floats(kMaskKeys, n * keys);
  ws.floats(kScores, static_cast<size_t>(n_threads) * n * keys);
}

void DecoderLayer::run(const LayerRun& io, Workspace& ws, ThreadPool& pool) const {
  const int64_t H = hidden_;
  const int64_t QD = n_heads_ * head_dim_;
  const int64_t D = n_kv_heads_ * head_dim_;
  const int64_t F = ffn_;
  const int64_t W = io.mask_width;
  const size_t esz = dtype_size(io_dtype_);

  float* mask = ws.floats(kMask, static_cast<size_t>(io.n_rows * W));
  to_float(io_dtype_, io.mask, mask, static_cast<size_t>(io.n_rows * W));
  int* row_open = ws.ints(kRowOpen, static_cast<size_t>(io.n_rows));
  int64_t n_active = 0;
  for (int64_t r = 0; r < io.n_rows; ++r) {
    row_open[r] = 0;
    for (int64_t c = 0; c < W; ++c) {
      if (mask[r * W + c] > kMaskBlocked) {
        row_open[r] = 1;
        n_active = r + 1;
        break;
      }
    }
  }
  const int64_t n = n_active;

  float* x = ws.floats(kX, static_cast<size_t>(std::max<int64_t>(n, 1) * H));
  float* hn = ws.floats(kNorm, static_cast<size_t>(std::max<int64_t>(n, 1) * H));
  float* q = ws.floats(kQ, static_cast<size_t>(std::max<int64_t>(n, 1) * QD));
  float* k = ws.floats(kK, static_cast<size_t>(std::max<int64_t>(n, 1) * D));
  float* v = ws.floats(kV, static_cast<size_t>(std::max<int64_t>(n, 1) * D));
  float* attn = ws.floats(kAttn, static_cast<size_t>(std::max<int64_t>(n, 1) * QD));
  float* tmp = ws.floats(kTmp, static_cast<size_t>(std::max<int64_t>(n, 1) * H));
  float* gate = ws.floats(kGate, static_cast<size_t>(std::max<int64_t>(n, 1) * F));
  float* up = ws.floats(kUp, static_cast<size_t>(std::max<int64_t>(n, 1) * F));
  float* rope = ws.floats(kRope, static_cast<size_t>(head_dim_));

  if (n > 0) {
    to_float(io_dtype_, io.input, x, static_cast<size_t>(n * H));
    rms_norm(x, ln1_, eps_, n, H, hn);
    const MatmulPart qkv[3] = {
        {q_.w, w_dtype_, H, q_.bias, QD, q, QD},
        {k_.w, w_dtype_, H, k_.bias, D, k, D},
        {v_.w, w_dtype_, H, v_.bias, D, v, D},
    };
    matmul(pool, hn, n, H, H, qkv, 3);
    const int64_t half = head_dim_ / 2;
    for (int64_t r = 0; r < n; ++r) {
      const float pos = static_cast<float>(io.indices[r]);
      for (int64_t j = 0; j < half; ++j) {
        const float angle = pos * inv_freq_[j];
        rope[j] = std::cos(angle) * rope_scaling_;
        rope[half + j] = std::sin(angle) * rope_scaling_;
      }
      apply_rope(q + r * QD, n_heads_, head_dim_, rope);
      apply_rope(k + r * D, n_kv_heads_, head_dim_, rope);
    }
    from_float(io_dtype_, k, io.k_out, static_cast<size_t>(n * D));
    from_float(io_dtype_, v, io.v_out, static_cast<size_t>(n * D));

    attention(io, n, q, k, v, attn, ws, pool);

    const MatmulPart o_part{o_.w, w_dtype_, QD, o_.bias, H, tmp, H};
    matmul(pool, attn, n, QD, QD, &o_part, 1);
    for (int64_t i = 0; i < n * H; ++i) x[i] += tmp[i];

    rms_norm(x, ln2_, eps_, n, H, hn);
    const MatmulPart mlp[2] = {
        {gate_.w, w_dtype_, H, gate_.bias, F, gate, F},
        {up_.w, w_dtype_, H, up_.bias, F, up, F},
    };
    matmul(pool, hn, n, H, H, mlp, 2);
    pool.parallel_for(static_cast<size_t>(n * F), 1024, [&](size_t b, size_t e) {
      for (size_t i = b; i < e; ++i) {
        const float g = gate[i];
        gate[i] = g / (1.0f + std::exp(-g)) * up[i];
      }
    });
    const MatmulPart down_part{down_.w, w_dtype_, F, down_.bias, H, tmp, H};
    matmul(pool, gate, n, F, F, &down_part, 1);
    for (int64_t i = 0; i < n * H; ++i) x[i] += tmp[i];
    for (int64_t r = 0; r < n; ++r) {
      if (!row_open[r]) std::memset(x + r * H, 0, static_cast<size_t>(H) * sizeof(float));
    }
    from_float(io_dtype_, x, io.output, static_cast<size_t>(n * H));
  }
  const size_t pad_rows = static_cast<size_t>(io.n_rows - n);
  if (pad_rows) {
    std::memset(static_cast<uint8_t*>(io.output) + n * H * esz, 0, pad_rows * H * esz);
    std::memset(static_cast<uint8_t*>(io.k_out) + n * D * esz, 0, pad_rows * D * esz);
    std::memset(static_cast<uint8_t*>(io.v_out) + n * D * esz, 0, pad_rows * D * esz);
  }
}

void DecoderLayer::attention(const LayerRun& io, int64_t n, const float* q, const float* k,
                             const float* v, float* out, Workspace& ws, ThreadPool& pool) const {
  const int64_t QD = n_heads_ * head_dim_;
  const int64_t D = n_kv_heads_ * head_dim_;
  const int64_t W = io.mask_width;
  const int64_t hd = head_dim_;
  const float* mask = ws.floats(kMask, 0);
  const int* row_open = ws.ints(kRowOpen, 0);

  int* open_cols = ws.ints(kOpenCols, static_cast<size_t>(std::max<int64_t>(io.n_history, 1)));
  int64_t n_open = 0;
  for (int64_t c = 0; c < io.n_history; ++c) {
    for (int64_t r = 0; r < n; ++r) {
      if (mask[r * W + c] > kMaskBlocked) {
        open_cols[n_open++] = static_cast<int>(c);
        break;
      }
    }
  }
  const int64_t nk = n_open + n;
  float* keys = ws.floats(kKeys, static_cast<size_t>(nk * D));
  float* values = ws.floats(kValues, static_cast<size_t>(nk * D));
  const size_t esz = dtype_size(io_dtype_);
  for (int64_t i = 0; i < n_open; ++i) {
    const size_t row = static_cast<size_t>(open_cols[i]);
    to_float(io_dtype_, static_cast<const uint8_t*>(io.k_cache) + row * D * esz, keys + i * D,
             static_cast<size_t>(D));
    to_float(io_dtype_, static_cast<const uint8_t*>(io.v_cache) + row * D * esz, values + i * D,
             static_cast<size_t>(D));
  }
  std::memcpy(keys + n_open * D, k, static_cast<size_t>(n * D) * sizeof(float));
  std::memcpy(values + n_open * D, v, static_cast<size_t>(n * D) * sizeof(float));

  float* mk = ws.floats(kMaskKeys, static_cast<size_t>(n * nk));
  for (int64_t r = 0; r < n; ++r) {
    const float* mr = mask + r * W;
    float* o = mk + r * nk;
    for (int64_t i = 0; i < n_open; ++i) o[i] = mr[open_cols[i]];
    for (int64_t c = 0; c < n; ++c) o[n_open + c] = mr[io.n_history + c];
  }

  const int n_threads = pool.size();
  float* scores_all = ws.floats(kScores, static_cast<size_t>(n_threads * n * nk));
  const int64_t group = n_heads_ / n_kv_heads_;
  const float scale = 1.0f / std::sqrt(static_cast<float>(hd));
  pool.run([&](int t, int nt) {
    float* scores = scores_all + static_cast<size_t>(t) * n * nk;
    for (int64_t h = t; h < n_heads_; h += nt) {
      const int64_t kvh = h / group;
      const MatmulPart part{keys + kvh * hd, DType::kFP32, D, nullptr, nk, scores, nk};
      matmul_serial(q + h * hd, n, hd, QD, part);
      for (int64_t r = 0; r < n; ++r) {
        float* o = out + r * QD + h * hd;
        std::memset(o, 0, static_cast<size_t>(hd) * sizeof(float));
        if (!row_open[r]) continue;
        float* s = scores + r * nk;
        const float* m = mk + r * nk;
        float mx = -std::numeric_limits<float>::infinity();
        for (int64_t j = 0; j < nk; ++j) {
          s[j] = s[j] * scale + m[j];
          if (m[j] > kMaskBlocked && s[j] > mx) mx = s[j];
        }
        float sum = 0.0f;
        for (int64_t j = 0; j < nk; ++j) {
          const float e = m[j] > kMaskBlocked ? std::exp(s[j] - mx) : 0.0f;
          s[j] = e;
          sum += e;
        }
        const float inv = 1.0f / sum;
        for (int64_t j = 0; j < nk; ++j) {
          const float p = s[j] * inv;
          if (p == 0.0f) continue;
          const float* vr = values + j * D + kvh * hd;
          for (int64_t d = 0; d < hd; ++d) o[d] += p * vr[d];
        }
      }
    }
  });
}

}  // namespace axllm::detail
