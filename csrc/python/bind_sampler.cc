#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

#include "axllm/sampler.h"
#include "bindings.h"
#include "strict_cast.h"

namespace py = pybind11;

namespace axllm::python {
namespace {

SamplerMode parse_mode(const std::string& mode) {
  if (mode == "hf") return SamplerMode::kHf;
  if (mode == "vendor") return SamplerMode::kVendor;
  throw std::invalid_argument("mode must be 'hf' or 'vendor', got '" + mode + "'");
}

const char* mode_name(SamplerMode mode) { return mode == SamplerMode::kHf ? "hf" : "vendor"; }

// A view of a 1-D float32 array; non-contiguous arrays are copied into `holder`.
std::span<const float> logits_view(const py::object& logits, py::array_t<float>& holder) {
  if (!py::isinstance<py::array>(logits)) {
    throw py::type_error("logits must be a numpy float32 array, got " +
                         std::string(py::str(py::type::of(logits).attr("__name__"))));
  }
  const auto a = py::reinterpret_borrow<py::array>(logits);
  if (!py::isinstance<py::array_t<float>>(a)) {
    throw py::type_error("logits must be float32, got " + std::string(py::str(a.dtype())));
  }
  if (a.ndim() != 1) {
    throw std::invalid_argument("logits must be 1-D [vocab], got " + std::to_string(a.ndim()) +
                                " dimensions");
  }
  holder = py::array_t<float, py::array::c_style | py::array::forcecast>::ensure(a);
  if (!holder) throw py::error_already_set();
  return {holder.data(), static_cast<size_t>(holder.size())};
}

}  // namespace

py::dict sampling_params_dict(const SamplingParams& p) {
  py::dict d;
  d["mode"] = mode_name(p.mode);
  d["temperature"] = p.temperature;
  d["top_k"] = p.top_k;
  d["top_p"] = p.top_p;
  d["min_p"] = p.min_p;
  d["repetition_penalty"] = p.repetition_penalty;
  d["presence_penalty"] = p.presence_penalty;
  d["frequency_penalty"] = p.frequency_penalty;
  d["seed"] = p.has_seed ? py::object(py::int_(p.seed)) : py::object(py::none());
  d["enable_top_p"] = p.enable_top_p;
  d["enable_top_k"] = p.enable_top_k;
  d["penalty_window"] = p.penalty_window;
  return d;
}

SamplingParams sampling_params_from(const py::dict& d) {
  static const char* kKnown[] = {"mode",
                                 "temperature",
                                 "top_k",
                                 "top_p",
                                 "min_p",
                                 "repetition_penalty",
                                 "presence_penalty",
                                 "frequency_penalty",
                                 "seed",
                                 "enable_top_p",
                                 "enable_top_k",
                                 "penalty_window"};
  for (auto item : d) {
    const std::string key = py::str(item.first);
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      throw py::type_error("unknown sampling parameter '" + key + "'");
    }
  }
  SamplingParams p;
  auto set = [&](const char* key, auto& out) {
    if (!d.contains(key) || d[key].is_none()) return;
    out = strict_cast<std::remove_reference_t<decltype(out)>>(d[key], key);
  };
  std::string mode;
  set("mode", mode);
  if (!mode.empty()) p.mode = parse_mode(mode);
  set("temperature", p.temperature);
  set("top_k", p.top_k);
  set("top_p", p.top_p);
  set("min_p", p.min_p);
  set("repetition_penalty", p.repetition_penalty);
  set("presence_penalty", p.presence_penalty);
  set("frequency_penalty", p.frequency_penalty);
  set("enable_top_p", p.enable_top_p);
  set("enable_top_k", p.enable_top_k);
  set("penalty_window", p.penalty_window);
  std::optional<uint64_t> seed;
  if (d.contains("seed") && !d["seed"].is_none()) seed = strict_cast<uint64_t>(d["seed"], "seed");
  if (seed) {
    p.seed = *seed;
    p.has_seed = true;
  }
  return p;
}

void register_sampler(py::module_& m) {
  py::class_<Sampler>(m, "Sampler",
                      "Next-token sampler over a logits vector (mode 'hf': transformers' "
                      "processors; mode 'vendor': AXERA post_config.json semantics).")
      .def(py::init([](const py::kwargs& params) {
             return std::make_unique<Sampler>(sampling_params_from(params));
           }),
           "Sampler(*, mode='hf', temperature=1.0, top_k=0, top_p=1.0, min_p=0.0,\n"
           "        repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0, "
           "seed=None,\n"
           "        enable_top_p=False, enable_top_k=False, penalty_window=20)\n"
           "Keyword arguments only; an omitted or None one keeps its default. Raises ValueError\n"
           "naming a bad value, TypeError naming an unknown parameter or one of the wrong type.")
      .def_property_readonly(
          "params", [](const Sampler& s) { return sampling_params_dict(s.params()); },
          "The parameters as a dict (seed None when unseeded).")
      .def(
          "sample",
          [](Sampler& s, const py::object& logits, const std::vector<int32_t>& prompt,
             const std::vector<int32_t>& generated) {
            py::array_t<float> holder;
            return s.sample(logits_view(logits, holder), prompt, generated);
          },
          py::arg("logits"), py::arg("prompt") = std::vector<int32_t>{},
          py::arg("generated") = std::vector<int32_t>{},
          "Picks the next token id from float32 logits [vocab].")
      .def(
          "probabilities",
          [](Sampler& s, const py::object& logits, const std::vector<int32_t>& prompt,
             const std::vector<int32_t>& generated) {
            py::array_t<float> holder;
            const std::vector<float> p =
                s.probabilities(logits_view(logits, holder), prompt, generated);
            py::array_t<float> out(static_cast<py::ssize_t>(p.size()));
            std::copy(p.begin(), p.end(), out.mutable_data());
            return out;
          },
          py::arg("logits"), py::arg("prompt") = std::vector<int32_t>{},
          py::arg("generated") = std::vector<int32_t>{},
          "The float32 [vocab] distribution sample() draws from (one-hot when greedy).");
}

}  // namespace axllm::python
