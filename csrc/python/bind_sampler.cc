#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "axllm/sampler.h"
#include "bindings.h"

namespace py = pybind11;

namespace axllm::python {
namespace {

SamplerMode parse_mode(const std::string& mode) {
  if (mode == "hf") return SamplerMode::kHf;
  if (mode == "vendor") return SamplerMode::kVendor;
  throw std::invalid_argument("mode must be 'hf' or 'vendor', got '" + mode + "'");
}

const char* mode_name(SamplerMode mode) { return mode == SamplerMode::kHf ? "hf" : "vendor"; }

int32_t to_int32(int64_t v, const char* field) {
  if (v < std::numeric_limits<int32_t>::min() || v > std::numeric_limits<int32_t>::max()) {
    throw std::invalid_argument(std::string(field) + " must fit in int32, got " + std::to_string(v));
  }
  return static_cast<int32_t>(v);
}

// None: no seed; otherwise an int in [0, 2**64).
void parse_seed(const py::object& seed, SamplingParams& p) {
  if (seed.is_none()) return;
  if (!py::isinstance<py::int_>(seed) || py::isinstance<py::bool_>(seed)) {
    throw std::invalid_argument("seed must be an int or None, got " + std::string(py::repr(seed)));
  }
  const unsigned long long v = PyLong_AsUnsignedLongLong(seed.ptr());
  if (PyErr_Occurred()) {
    PyErr_Clear();
    throw std::invalid_argument("seed must be in [0, 2**64), got " + std::string(py::repr(seed)));
  }
  p.seed = static_cast<uint64_t>(v);
  p.has_seed = true;
}

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

py::dict params_dict(const SamplingParams& p) {
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

}  // namespace

SamplingParams sampling_params_from(const py::dict& d) {
  static const char* kKnown[] = {"mode", "temperature", "top_k", "top_p", "min_p",
                                 "repetition_penalty", "presence_penalty", "frequency_penalty",
                                 "seed", "enable_top_p", "enable_top_k", "penalty_window"};
  for (auto item : d) {
    const std::string key = py::str(item.first);
    if (std::find(std::begin(kKnown), std::end(kKnown), key) == std::end(kKnown)) {
      throw std::invalid_argument("unknown sampling parameter '" + key + "'");
    }
  }
  SamplingParams p;
  auto get = [&](const char* key) -> py::object {
    return d.contains(key) ? py::reinterpret_borrow<py::object>(d[key]) : py::none();
  };
  if (!get("mode").is_none()) p.mode = parse_mode(get("mode").cast<std::string>());
  if (!get("temperature").is_none()) p.temperature = get("temperature").cast<float>();
  if (!get("top_k").is_none()) p.top_k = to_int32(get("top_k").cast<int64_t>(), "top_k");
  if (!get("top_p").is_none()) p.top_p = get("top_p").cast<float>();
  if (!get("min_p").is_none()) p.min_p = get("min_p").cast<float>();
  if (!get("repetition_penalty").is_none()) p.repetition_penalty = get("repetition_penalty").cast<float>();
  if (!get("presence_penalty").is_none()) p.presence_penalty = get("presence_penalty").cast<float>();
  if (!get("frequency_penalty").is_none()) p.frequency_penalty = get("frequency_penalty").cast<float>();
  if (!get("enable_top_p").is_none()) p.enable_top_p = get("enable_top_p").cast<bool>();
  if (!get("enable_top_k").is_none()) p.enable_top_k = get("enable_top_k").cast<bool>();
  if (!get("penalty_window").is_none()) {
    p.penalty_window = to_int32(get("penalty_window").cast<int64_t>(), "penalty_window");
  }
  parse_seed(get("seed"), p);
  return p;
}

void register_sampler(py::module_& m) {
  py::class_<Sampler>(m, "Sampler",
                      "Next-token sampler over a logits vector (mode 'hf': transformers' "
                      "processors; mode 'vendor': AXERA post_config.json semantics).")
      .def(py::init([](const std::string& mode, float temperature, int64_t top_k, float top_p,
                       float min_p, float repetition_penalty, float presence_penalty,
                       float frequency_penalty, const py::object& seed, bool enable_top_p,
                       bool enable_top_k, int64_t penalty_window) {
             SamplingParams p;
             p.mode = parse_mode(mode);
             p.temperature = temperature;
             p.top_k = to_int32(top_k, "top_k");
             p.top_p = top_p;
             p.min_p = min_p;
             p.repetition_penalty = repetition_penalty;
             p.presence_penalty = presence_penalty;
             p.frequency_penalty = frequency_penalty;
             parse_seed(seed, p);
             p.enable_top_p = enable_top_p;
             p.enable_top_k = enable_top_k;
             p.penalty_window = to_int32(penalty_window, "penalty_window");
             return std::make_unique<Sampler>(p);
           }),
           py::kw_only(), py::arg("mode") = "hf", py::arg("temperature") = 1.0f,
           py::arg("top_k") = 0, py::arg("top_p") = 1.0f, py::arg("min_p") = 0.0f,
           py::arg("repetition_penalty") = 1.0f, py::arg("presence_penalty") = 0.0f,
           py::arg("frequency_penalty") = 0.0f, py::arg("seed") = py::none(),
           py::arg("enable_top_p") = false, py::arg("enable_top_k") = false,
           py::arg("penalty_window") = 20)
      .def_property_readonly("params", [](const Sampler& s) { return params_dict(s.params()); },
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
            const std::vector<float> p = s.probabilities(logits_view(logits, holder), prompt, generated);
            py::array_t<float> out(static_cast<py::ssize_t>(p.size()));
            std::copy(p.begin(), p.end(), out.mutable_data());
            return out;
          },
          py::arg("logits"), py::arg("prompt") = std::vector<int32_t>{},
          py::arg("generated") = std::vector<int32_t>{},
          "The float32 [vocab] distribution sample() draws from (one-hot when greedy).");
}

}  // namespace axllm::python
