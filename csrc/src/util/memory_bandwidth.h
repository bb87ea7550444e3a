#pragma once
// A read-bandwidth probe for benchmarks: the roofline the CPU engine's decode is measured against.
#include <cstddef>

namespace axllm::detail {

// Best-of-`repeats` read bandwidth in bytes/s over a `bytes`-sized buffer, read by `threads`
// threads (each summing its own contiguous slice), the way a row-split GEMV reads its weights.
double measure_read_bandwidth(size_t bytes, int repeats, int threads);

}  // namespace axllm::detail
