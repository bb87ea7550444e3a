#include "bindings.h"

PYBIND11_MODULE(_core, m) {
  m.doc() = "axllm native core: engines, inference sessions, the sampler and the LLM runtime";
  axllm::python::register_errors(m);
  axllm::python::register_log(m);
  axllm::python::register_inference_session(m);
  axllm::python::register_sampler(m);
  axllm::python::register_generation_config(m);
  axllm::python::register_llm(m);
  axllm::python::register_testing(m);
}
