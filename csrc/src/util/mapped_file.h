#pragma once
// A read-only memory map of a whole file (RAII, move-only).
#include <cstddef>
#include <cstdint>
#include <string>

namespace axllm::detail {

class MappedFile {
 public:
  // Maps `path` read-only. Throws ModelLoadError naming the file when it is missing, unreadable
  // or empty.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;
  MappedFile(MappedFile&& other) noexcept;
  MappedFile& operator=(MappedFile&& other) noexcept;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace axllm::detail
