#pragma once
// Registration functions of the axllm._core module, one per binding file.
#include <pybind11/pybind11.h>

#include "axllm/sampler.h"

namespace axllm::python {

void register_errors(pybind11::module_& m);
void register_log(pybind11::module_& m);
void register_inference_session(pybind11::module_& m);
void register_sampler(pybind11::module_& m);
void register_generation_config(pybind11::module_& m);
void register_llm(pybind11::module_& m);
void register_testing(pybind11::module_& m);

// Sampling parameters from a dict with SamplingParams' field names (mode "hf"/"vendor", seed None
// for unseeded; an absent or None key keeps its default). Throws pybind11::type_error naming an
// unknown key or a value of the wrong type, std::invalid_argument naming a bad value.
SamplingParams sampling_params_from(const pybind11::dict& d);
// The dict sampling_params_from reads (seed None when unseeded).
pybind11::dict sampling_params_dict(const SamplingParams& p);

}  // namespace axllm::python
