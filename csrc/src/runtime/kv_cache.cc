#include "axllm/kv_cache.h"

#include <stdexcept>
#include <string>

namespace axllm {

KvCache::KvCache(Backend& backend, int n_layers, int64_t rows, size_t row_bytes, int64_t capacity)
    : row_bytes_(row_bytes), capacity_(capacity) {
  for (int i = 0; i < n_layers; ++i) {
    k_.push_back(backend.allocate(static_cast<size_t>(rows) * row_bytes));
    v_.push_back(backend.allocate(static_cast<size_t>(rows) * row_bytes));
  }
  tokens_.reserve(static_cast<size_t>(capacity));
}

void KvCache::append(std::span<const int32_t> ids) {
  if (size() + static_cast<int64_t>(ids.size()) > capacity_) {
    throw std::length_error("KV cache overflow: " + std::to_string(size()) + " + " +
                            std::to_string(ids.size()) + " rows > capacity " +
                            std::to_string(capacity_));
  }
  tokens_.insert(tokens_.end(), ids.begin(), ids.end());
}

void KvCache::rewind_to(int64_t n) {
  if (n < 0 || n > size()) {
    throw std::out_of_range("rewind_to(" + std::to_string(n) + "): the cache holds " +
                            std::to_string(size()) + " tokens");
  }
  tokens_.resize(static_cast<size_t>(n));
}

}  // namespace axllm
