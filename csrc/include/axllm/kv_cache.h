#pragma once
// The KV cache: one K and one V engine buffer per layer, shared by every shape group of the
// layer (row r of a group's [1, H_g, D] view is row r of the decode view [1, C, D]), and the
// token ids whose keys and values the first size() rows hold.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "axllm/backend.h"

namespace axllm {

class KvCache {
 public:
  // `rows` rows of `row_bytes` per buffer (at least capacity + the prefill chunk, so a chunk's
  // output rows can be bound in place); `capacity` is the context length C.
  KvCache(Backend& backend, int n_layers, int64_t rows, size_t row_bytes, int64_t capacity);

  const std::shared_ptr<Buffer>& k(int layer) const { return k_[layer]; }
  const std::shared_ptr<Buffer>& v(int layer) const { return v_[layer]; }
  size_t row_bytes() const { return row_bytes_; }
  size_t row_offset(int64_t row) const { return static_cast<size_t>(row) * row_bytes_; }

  int64_t size() const { return static_cast<int64_t>(tokens_.size()); }
  int64_t capacity() const { return capacity_; }
  const std::vector<int32_t>& tokens() const { return tokens_; }

  // Records that rows [size(), size() + ids.size()) now hold `ids`. Throws std::length_error
  // past capacity. Allocation-free once tokens_ has reserved capacity.
  void append(std::span<const int32_t> ids);
  void reset() { tokens_.clear(); }
  // Forgets every row from `n` on. Throws std::out_of_range if n > size().
  void rewind_to(int64_t n);

 private:
  std::vector<std::shared_ptr<Buffer>> k_;
  std::vector<std::shared_ptr<Buffer>> v_;
  size_t row_bytes_;
  int64_t capacity_;
  std::vector<int32_t> tokens_;
};

}  // namespace axllm
