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
#include <type_traits>
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
      throw py::type_error("unknown sampling parameter '" + key + "'");
    }
  }
  SamplingParams p;
  auto get = [&](const char* key) -> py::object {
    return d.contains(key) ? py::reinterpret_borrow<py::object>(d[key]) : py::none();
  };
  // Sets `out` from d[key] unless it is absent or None. Numbers must be numbers (a bool is not one),
  // flags bools, ints integral (ValueError outside int32); a wrong type is a TypeError naming the key.
  auto wrong_type = [&](const char* key, const char* kind, const py::object& v) {
    return py::type_error(std::string(key) + " must be " + kind + ", got " + std::string(py::repr(v)));
  };
  auto set = [&](const char* key, auto& out, const char* kind) {
    const py::object v = get(key);
    if (v.is_none()) return;
    using T = std::remove_reference_t<decltype(out)>;
    if constexpr (std::is_same_v<T, bool>) {
      py::detail::make_caster<bool> flag;
      if (!flag.load(v, /*convert=*/false)) throw wrong_type(key, kind, v);
      out = py::detail::cast_op<bool>(flag);
    } else if constexpr (std::is_same_v<T, int32_t>) {
      if (PyBool_Check(v.ptr())) throw wrong_type(key, kind, v);
      const py::object index = py::reinterpret_steal<py::object>(PyNumber_Index(v.ptr()));
      if (!index) {
        PyErr_Clear();
        throw wrong_type(key, kind, v);
      }
      int overflow = 0;
      const long long n = PyLong_AsLongLongAndOverflow(index.ptr(), &overflow);
      if (overflow != 0) {
        throw std::invalid_argument(std::string(key) + " must fit in int32, got " + std::string(py::repr(v)));
      }
      out = to_int32(static_cast<int64_t>(n), key);
    } else if constexpr (std::is_same_v<T, float>) {
      py::detail::make_caster<float> number;
      if (PyBool_Check(v.ptr()) || !number.load(v, /*convert=*/true)) throw wrong_type(key, kind, v);
      out = py::detail::cast_op<float>(number);
    } else {
      py::detail::make_caster<T> text;
      if (!text.load(v, /*convert=*/false)) throw wrong_type(key, kind, v);
      out = py::detail::cast_op<T>(text);
    }
  };
  if (!get("mode").is_none()) {
    std::string mode;
    set("mode", mode, "'hf' or 'vendor'");
    p.mode = parse_mode(mode);
  }
  set("temperature", p.temperature, "a number");
  set("top_k", p.top_k, "an int");
  set("top_p", p.top_p, "a number");
  set("min_p", p.min_p, "a number");
  set("repetition_penalty", p.repetition_penalty, "a number");
  set("presence_penalty", p.presence_penalty, "a number");
  set("frequency_penalty", p.frequency_penalty, "a number");
  set("enable_top_p", p.enable_top_p, "a bool");
  set("enable_top_k", p.enable_top_k, "a bool");
  set("penalty_window", p.penalty_window, "an int");
  parse_seed(get("seed"), p);
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
           "        repetition_penalty=1.0, presence_penalty=0.0, frequency_penalty=0.0, seed=None,\n"
           "        enable_top_p=False, enable_top_k=False, penalty_window=20)\n"
           "Keyword arguments only; an omitted or None one keeps its default. Raises ValueError\n"
           "naming a bad value, TypeError naming an unknown parameter or one of the wrong type.")
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
