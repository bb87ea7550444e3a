#pragma once
// The token embedding table: headerless row-major [rows, width] bf16, read through a read-only
// memory map (pages are touched only for the rows used, so loading costs no resident memory).
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "axllm/backend.h"
#include "axllm/dtype.h"

namespace axllm {

class Embeddings {
 public:
  // Maps `path`. `rows` 0 derives the row count from the file size. Throws ModelLoadError naming
  // the file when it is missing or its size is not rows * width * 2 bytes.
  Embeddings(const std::string& path, int64_t rows, int64_t width);
  ~Embeddings();
  Embeddings(const Embeddings&) = delete;
  Embeddings& operator=(const Embeddings&) = delete;

  int64_t rows() const { return rows_; }
  int64_t width() const { return width_; }
  const std::string& path() const { return path_; }

  // Writes the rows of `tokens`, converted to `dtype`, contiguously into `dst` from `offset`.
  // `scratch` is reused between calls. Throws std::out_of_range naming a token id outside
  // [0, rows).
  void write_rows(std::span<const int32_t> tokens, DType dtype, Buffer& dst, size_t offset,
                  std::vector<uint8_t>& scratch) const;

 private:
  std::string path_;
  const uint16_t* data_ = nullptr;
  size_t bytes_ = 0;
  int64_t rows_ = 0;
  int64_t width_ = 0;
};

}  // namespace axllm
