#include "axllm/embeddings.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

#include "axllm/errors.h"

namespace axllm {

Embeddings::Embeddings(const std::string& path, int64_t rows, int64_t width)
    : path_(path), width_(width) {
  if (width <= 0) throw std::invalid_argument(path + ": embedding width must be positive");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw ModelLoadError(path + ": cannot open embedding table: " + std::strerror(errno));
  struct stat st{};
  if (::fstat(fd, &st) != 0 || st.st_size <= 0) {
    ::close(fd);
    throw ModelLoadError(path + ": embedding table is empty or unreadable");
  }
  bytes_ = static_cast<size_t>(st.st_size);
  const size_t row_bytes = static_cast<size_t>(width) * 2;
  if (rows <= 0) {
    if (bytes_ % row_bytes != 0) {
      ::close(fd);
      throw ModelLoadError(path + ": " + std::to_string(bytes_) +
                           " bytes is not a whole number of " + std::to_string(width) +
                           "-wide bf16 rows (embedding width " + std::to_string(width) +
                           " does not match this table)");
    }
    rows = static_cast<int64_t>(bytes_ / row_bytes);
  } else if (static_cast<size_t>(rows) * row_bytes != bytes_) {
    ::close(fd);
    throw ModelLoadError(path + ": " + std::to_string(bytes_) + " bytes, but tokens_embed_num " +
                         std::to_string(rows) + " x tokens_embed_size " + std::to_string(width) +
                         " x 2 = " + std::to_string(static_cast<size_t>(rows) * row_bytes));
  }
  rows_ = rows;
  void* p = ::mmap(nullptr, bytes_, PROT_READ, MAP_PRIVATE, fd, 0);
  const int err = errno;
  ::close(fd);
  if (p == MAP_FAILED) throw ModelLoadError(path + ": mmap failed: " + std::strerror(err));
  ::madvise(p, bytes_, MADV_RANDOM);
  data_ = static_cast<const uint16_t*>(p);
}

Embeddings::~Embeddings() {
  if (data_) ::munmap(const_cast<uint16_t*>(data_), bytes_);
}

void Embeddings::write_rows(std::span<const int32_t> tokens, DType dtype, Buffer& dst,
                            size_t offset, std::vector<uint8_t>& scratch) const {
  const size_t w = static_cast<size_t>(width_);
  const size_t out_row = w * dtype_size(dtype);
  const size_t rows_bytes = tokens.size() * out_row;
  const size_t float_offset = (rows_bytes + 15) / 16 * 16;
  const size_t need = float_offset + (dtype == DType::kBF16 ? 0 : w * sizeof(float));
  if (scratch.size() < need) scratch.resize(need);
  float* widened = reinterpret_cast<float*>(scratch.data() + float_offset);
  for (size_t i = 0; i < tokens.size(); ++i) {
    const int32_t t = tokens[i];
    if (t < 0 || t >= rows_) {
      throw std::out_of_range("token id " + std::to_string(t) +
                              " is outside the embedding table [0, " + std::to_string(rows_) +
                              ") of " + path_);
    }
    const uint16_t* row = data_ + static_cast<size_t>(t) * w;
    uint8_t* out = scratch.data() + i * out_row;
    if (dtype == DType::kBF16) {
      std::memcpy(out, row, out_row);
    } else {
      for (size_t j = 0; j < w; ++j) widened[j] = bf16_to_float(row[j]);
      from_float(dtype, widened, out, w);
    }
  }
  dst.write(offset, scratch.data(), tokens.size() * out_row);
}

}  // namespace axllm
