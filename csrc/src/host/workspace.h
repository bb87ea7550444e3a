#pragma once
// Scratch memory shared by every model of one host backend. Buffers only grow, so once the largest
// group has run, later runs allocate nothing.
#include <cstddef>
#include <vector>

namespace axllm::detail {

class Workspace {
 public:
  // Returns slot `index` with room for at least `n` floats (contents unspecified).
  float* floats(size_t index, size_t n) {
    if (index >= slots_.size()) slots_.resize(index + 1);
    auto& v = slots_[index];
    if (v.size() < n) v.resize(n);
    return v.data();
  }
  // Returns int slot `index` with room for at least `n` values.
  int* ints(size_t index, size_t n) {
    if (index >= int_slots_.size()) int_slots_.resize(index + 1);
    auto& v = int_slots_[index];
    if (v.size() < n) v.resize(n);
    return v.data();
  }

 private:
  std::vector<std::vector<float>> slots_;
  std::vector<std::vector<int>> int_slots_;
};

}  // namespace axllm::detail
