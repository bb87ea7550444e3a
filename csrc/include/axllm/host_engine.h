#pragma once
// Knobs and probes of the host engine (the CPU host engine) for tests and benchmarks: what the
// bindings may call of its internals, nothing else.
#include <cstddef>
#include <string>

namespace axllm::host_engine {

// The kernel family in use: "avx512", "avx2" or "generic" ($AXLLM_HOST_KERNEL picks one at start).
std::string kernel_name();
// Selects kernel family `name` for every later run; false (nothing changed) when this machine
// cannot run it or the name is not a family.
bool set_kernel(const std::string& name);
// Threads the host engine uses: $AXLLM_NUM_THREADS if set and positive, else the core count.
int thread_count();
// Best read bandwidth in bytes/s over a `bytes`-sized buffer read by `threads` threads (<= 0:
// thread_count()), best of `repeats` passes per access pattern: the roofline decode is measured
// against.
double measure_read_bandwidth(size_t bytes, int repeats, int threads);

}  // namespace axllm::host_engine
