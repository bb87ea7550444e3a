#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <optional>

#include "axllm/backends.h"
#include "axllm/errors.h"
#include "axllm/inference_session.h"
#include "bindings.h"

namespace py = pybind11;

namespace axllm::python {
namespace {

std::optional<DType> numpy_dtype(const py::array& a) {
  const std::string name = py::str(a.dtype().attr("name"));
  if (name == "bfloat16") return DType::kBF16;
  if (name == "float16") return DType::kFP16;
  if (name == "float32") return DType::kFP32;
  if (name == "uint32") return DType::kUInt32;
  if (name == "int32") return DType::kInt32;
  if (name == "uint8") return DType::kUInt8;
  if (name == "int8") return DType::kInt8;
  return std::nullopt;
}

HostTensor host_tensor(const std::string& name, const py::array& a, bool writable) {
  if (!(a.flags() & py::array::c_style)) {
    throw std::invalid_argument("tensor '" + name + "': array must be C-contiguous");
  }
  if (writable && !a.writeable()) {
    throw std::invalid_argument("tensor '" + name + "': destination array is read-only");
  }
  const auto dtype = numpy_dtype(a);
  if (!dtype) {
    throw TypeMismatch("tensor '" + name + "': numpy dtype " + std::string(py::str(a.dtype())) +
                       " is not an engine tensor dtype");
  }
  HostTensor t;
  t.name = name;
  t.dtype = *dtype;
  t.shape.assign(a.shape(), a.shape() + a.ndim());
  t.data = const_cast<void*>(a.data());
  t.bytes = static_cast<size_t>(a.nbytes());
  return t;
}

py::list spec_list(const std::vector<TensorSpec>& specs) {
  py::list out;
  for (const auto& s : specs) {
    out.append(py::make_tuple(s.name, py::tuple(py::cast(s.shape)), dtype_name(s.dtype), s.bytes));
  }
  return out;
}

}  // namespace

void register_inference_session(py::module_& m) {
  py::class_<InferenceSession>(m, "InferenceSession",
                               "One engine model with a buffer per tensor per shape group.")
      .def(py::init([](const std::string& path, const std::string& backend) {
             py::gil_scoped_release release;
             return std::make_unique<InferenceSession>(select_backend(backend, path), path, 0);
           }),
           py::arg("path"), py::arg("backend") = "auto")
      .def("close", &InferenceSession::close, py::call_guard<py::gil_scoped_release>(),
           "Free the engine model and every buffer now; later calls raise ClosedError.")
      .def_property_readonly("closed", &InferenceSession::closed)
      .def_property_readonly(
          "num_groups",
          py::cpp_function(&InferenceSession::num_groups, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("path", &InferenceSession::path)
      .def(
          "group_io",
          [](const InferenceSession& s, int g) {
            GroupSpec spec;
            {
              py::gil_scoped_release release;  // waits for a run in progress
              spec = s.group(g);
            }
            return py::make_tuple(spec_list(spec.inputs), spec_list(spec.outputs));
          },
          py::arg("shape_group"),
          "([(name, shape, dtype, bytes)] inputs, [...] outputs) of a shape group.")
      .def(
          "run",
          [](InferenceSession& s, int g,
             const std::vector<std::pair<std::string, py::array>>& feeds,
             const std::vector<std::pair<std::string, py::array>>& outputs) {
            std::vector<HostTensor> ins;
            std::vector<HostTensor> outs;
            for (const auto& [name, a] : feeds) ins.push_back(host_tensor(name, a, false));
            for (const auto& [name, a] : outputs) outs.push_back(host_tensor(name, a, true));
            py::gil_scoped_release release;
            s.run(g, ins, outs);
          },
          py::arg("shape_group"), py::arg("feeds"), py::arg("outputs"),
          "Copy feeds in, run the group with the GIL released, copy outputs into the given "
          "arrays.");
}

}  // namespace axllm::python
