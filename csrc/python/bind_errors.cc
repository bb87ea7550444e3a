#include <pybind11/pybind11.h>

#include "axllm/errors.h"
#include "bindings.h"

namespace py = pybind11;

namespace axllm::python {

void register_errors(py::module_& m) {
  static py::exception<Error> base(m, "AxllmError", PyExc_RuntimeError);
  base.doc() = "Base class of axllm's runtime errors.";
  static py::exception<ModelLoadError> load(m, "ModelLoadError", base.ptr());
  load.doc() = "A model file is missing, truncated, malformed or inconsistent.";
  static py::exception<UnsupportedModelError> unsupported(m, "UnsupportedModelError", load.ptr());
  unsupported.doc() = "The model's architecture or kind is not supported.";
  static py::exception<EngineError> engine(m, "EngineError", base.ptr());
  engine.doc() = "An engine or vendor call failed; .function and .code tell which and how.";
  // Typed defaults for the attributes every raised instance sets (the stubs show them).
  engine.attr("function") = "";
  engine.attr("code") = 0;
  static py::exception<BusyError> busy(m, "BusyError", base.ptr());
  busy.doc() =
      "A call on a model while another thread runs one on it (axllm.LLM serializes its calls).";
  static py::exception<ClosedError> closed(m, "ClosedError", base.ptr());
  closed.doc() = "A model or session was used after close(); the message names its path.";

  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const TypeMismatch& e) {
      PyErr_SetString(PyExc_TypeError, e.what());
    } catch (const UnsupportedModelError& e) {
      PyErr_SetString(unsupported.ptr(), e.what());
    } catch (const ModelLoadError& e) {
      PyErr_SetString(load.ptr(), e.what());
    } catch (const ClosedError& e) {
      PyErr_SetString(closed.ptr(), e.what());
    } catch (const EngineError& e) {
      py::object inst = py::reinterpret_borrow<py::object>(engine.ptr())(e.what());
      inst.attr("function") = e.function();
      inst.attr("code") = e.code();
      PyErr_SetObject(engine.ptr(), inst.ptr());
    } catch (const BusyError& e) {
      PyErr_SetString(busy.ptr(), e.what());
    } catch (const Error& e) {
      PyErr_SetString(base.ptr(), e.what());
    }
  });
}

}  // namespace axllm::python
