#include <pybind11/functional.h>
#include <pybind11/pybind11.h>

#include "axllm/log.h"
#include "bindings.h"

namespace py = pybind11;

namespace axllm::python {

void register_log(py::module_& m) {
  m.def(
      "set_log_sink",
      [](py::object fn) {
        if (fn.is_none()) {
          set_log_sink({});
          return;
        }
        auto holder = std::make_shared<py::object>(std::move(fn));
        set_log_sink([holder](LogLevel level, const std::string& message) {
          if (!Py_IsInitialized()) return;
          py::gil_scoped_acquire gil;
          try {
            (*holder)(static_cast<int>(level), message);
          } catch (py::error_already_set& e) {
            e.discard_as_unraisable("axllm log sink");
          }
        });
      },
      py::arg("sink"),
      "Route native log records to sink(level: int, message: str); None restores stderr.");
  m.def(
      "set_log_level", [](int level) { set_log_level(static_cast<LogLevel>(level)); },
      py::arg("level"), "Drop native records below this logging level (10 debug .. 40 error).");
  m.def("get_log_level", [] { return static_cast<int>(log_level()); });
  m.def(
      "_log", [](int level, const std::string& msg) { log(static_cast<LogLevel>(level), msg); },
      py::arg("level"), py::arg("message"), "Emit a record through the native sink (for tests).");
}

}  // namespace axllm::python
