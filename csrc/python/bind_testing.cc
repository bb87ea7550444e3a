#include <pybind11/pybind11.h>

#include <string>

#include "axllm/host_engine.h"
#include "bindings.h"

namespace py = pybind11;

namespace axllm::python {

void register_testing(py::module_& m) {
  py::module_ t = m.def_submodule(
      "_testing",
      "Knobs and probes of the host engine (the CPU host engine) for tests and benchmarks.");
  t.def("host_kernel", &host_engine::kernel_name,
        "The host engine's kernel family in use: avx512, avx2 or generic.");
  t.def("set_host_kernel", &host_engine::set_kernel, py::arg("name"),
        "Select a kernel family (for tests); False if the CPU cannot run it.");
  t.def(
      "measure_read_bandwidth",
      [](size_t bytes, int repeats, int threads) {
        py::gil_scoped_release release;
        return host_engine::measure_read_bandwidth(bytes, repeats, threads);
      },
      py::arg("bytes") = size_t{1} << 30, py::arg("repeats") = 5, py::arg("threads") = 0,
      "Best read bandwidth (bytes/s) over `bytes` with `threads` threads (0: the engine's count).");
  t.def("host_threads", &host_engine::thread_count,
        "Threads the host engine uses (AXLLM_NUM_THREADS or the core count).");
}

}  // namespace axllm::python
