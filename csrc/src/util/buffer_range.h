#pragma once
// The bounds check every Buffer implementation makes before touching its memory.
#include <cstddef>
#include <stdexcept>
#include <string>

namespace axllm {

// Throws std::out_of_range naming `what` (the buffer kind and operation) unless
// [offset, offset + n) lies within a buffer of `size` bytes. Overflow-safe.
inline void check_buffer_range(const char* what, size_t offset, size_t n, size_t size) {
  if (offset > size || n > size - offset) {
    throw std::out_of_range(std::string(what) + ": range [" + std::to_string(offset) + ", " +
                            std::to_string(offset + n) + ") exceeds the buffer's " +
                            std::to_string(size) + " bytes");
  }
}

}  // namespace axllm
