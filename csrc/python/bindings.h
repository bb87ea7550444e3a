#pragma once
// Registration functions of the axllm._core module, one per binding file.
#include <pybind11/pybind11.h>

namespace axllm::python {

void register_errors(pybind11::module_& m);
void register_log(pybind11::module_& m);
void register_session(pybind11::module_& m);
void register_sampler(pybind11::module_& m);
void register_llm(pybind11::module_& m);

}  // namespace axllm::python
