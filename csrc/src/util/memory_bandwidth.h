#pragma once
// A read-bandwidth probe for benchmarks: the roofline the host engine's decode is measured against.
#include <cstddef>

namespace axllm::detail {

// Best read bandwidth in bytes/s over a `bytes`-sized buffer read by `threads` threads, each
// summing its own contiguous slice, over `repeats` passes for each of several software-prefetch
// distances (none, 512 B, 2 KiB ahead), as one stream and as four interleaved streams: the best
// any streaming reader here achieves.
double measure_read_bandwidth(size_t bytes, int repeats, int threads);

}  // namespace axllm::detail
