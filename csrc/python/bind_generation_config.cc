// axllm.GenerationConfig: the C++ GenerationConfig bound field by field. Each field is declared
// once below (name, doc, member); the property, the keyword constructor, the `fields` map and
// to_dict() all iterate that one table, and module import fails if the table and
// GenerationConfig::kFieldNames disagree.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/typing.h>

#include <charconv>
#include <cstdlib>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "axllm/generation_config.h"
#include "bindings.h"
#include "strict_cast.h"

namespace py = pybind11;

namespace axllm::python {
namespace {

struct Field {
  const char* name;
  const char* kind;  // the Python type the field holds: "int", "float", "list[str]", "str"
  const char* doc;
  std::function<py::object(const GenerationConfig&)> get;
  // Sets the field from a Python value (None: back to its default); TypeError/ValueError.
  std::function<void(GenerationConfig&, py::handle)> set;
};

template <class T>
const char* kind_of() {
  if constexpr (std::is_same_v<T, float>) {
    return "float";
  } else {
    return "int";
  }
}

// A float32 field as the Python float with the shortest decimal form that rounds to it, so that
// temperature=0.8 reads back as 0.8.
py::object to_python(float v) {
  char buf[64];
  const auto r = std::to_chars(buf, buf + sizeof(buf), v);
  return py::float_(std::strtod(std::string(buf, r.ptr).c_str(), nullptr));
}

template <class T>
py::object to_python(T v) {
  return py::cast(v);
}

template <class T>
Field optional_field(const char* name, const char* doc,
                     std::optional<T> GenerationConfig::* member) {
  return Field{name, kind_of<T>(), doc,
               [member](const GenerationConfig& c) -> py::object {
                 return (c.*member) ? to_python(*(c.*member)) : py::none();
               },
               [member, name](GenerationConfig& c, py::handle v) {
                 if (v.is_none()) {
                   c.*member = std::nullopt;
                 } else {
                   c.*member = strict_cast<T>(v, name);
                 }
               }};
}

const std::vector<Field>& fields() {
  static const std::vector<Field> table = {
      optional_field("max_new_tokens",
                     "Tokens to generate at most (>= 1); None: until EOS or a full context.",
                     &GenerationConfig::max_new_tokens),
      optional_field("temperature", "Sampling temperature (>= 0; 0 is greedy).",
                     &GenerationConfig::temperature),
      optional_field("top_k", "Keep the k most probable tokens (>= 0; 0 keeps all).",
                     &GenerationConfig::top_k),
      optional_field("top_p", "Nucleus sampling mass, in (0, 1].", &GenerationConfig::top_p),
      optional_field("min_p", "Drop tokens below min_p x the top probability, in [0, 1].",
                     &GenerationConfig::min_p),
      optional_field("repetition_penalty", "transformers' repetition penalty (> 0; 1 is off).",
                     &GenerationConfig::repetition_penalty),
      optional_field("presence_penalty", "OpenAI's presence penalty (finite; 0 is off).",
                     &GenerationConfig::presence_penalty),
      optional_field("frequency_penalty", "OpenAI's frequency penalty (finite; 0 is off).",
                     &GenerationConfig::frequency_penalty),
      optional_field("seed", "Seed of the sampler's generator, in [0, 2**64); None: random.",
                     &GenerationConfig::seed),
      Field{"stop", "list[str]",
            "Stop strings (at most 16, non-empty): the text ends before the first one generated.",
            [](const GenerationConfig& c) -> py::object { return py::cast(c.stop); },
            [](GenerationConfig& c, py::handle v) {
              c.stop = v.is_none() ? std::vector<std::string>{}
                                   : strict_cast<std::vector<std::string>>(v, "stop");
            }},
      Field{"overflow", "str",
            "A prompt longer than the context: 'error' (ContextOverflowError), 'truncate_left' "
            "(drop its "
            "oldest tokens) or 'drop_oldest_turns' (chat: drop the oldest turns).",
            [](const GenerationConfig& c) -> py::object {
              return py::str(overflow_policy_name(c.overflow));
            },
            [](GenerationConfig& c, py::handle v) {
              c.overflow = v.is_none()
                               ? OverflowPolicy::kError
                               : parse_overflow_policy(strict_cast<std::string>(v, "overflow"));
            }},
  };
  return table;
}

const Field& field(const std::string& name) {
  for (const Field& f : fields()) {
    if (name == f.name) return f;
  }
  std::string known;
  for (const Field& f : fields()) known += std::string(known.empty() ? "" : ", ") + f.name;
  throw py::type_error("unknown generation option '" + name + "' (known: " + known + ")");
}

// `base` with the keyword values set and the whole validated.
GenerationConfig with_values(GenerationConfig base, const py::dict& values) {
  for (auto item : values) {
    if (!PyUnicode_Check(item.first.ptr())) throw py::type_error("option names must be str");
    field(item.first.cast<std::string>()).set(base, item.second);
  }
  base.validate();
  return base;
}

py::dict to_dict(const GenerationConfig& c) {
  py::dict d;
  for (const Field& f : fields()) d[f.name] = f.get(c);
  return d;
}

using OverflowName = py::typing::Literal<"'error'", "'truncate_left'", "'drop_oldest_turns'">;

// Field `f` as a property whose getter is annotated Get and setter Set in the generated stubs;
// assigning validates the whole config and changes nothing when it fails.
template <class Get, class Set>
void def_field(py::class_<GenerationConfig>& cls, const Field& f) {
  cls.def_property(
      f.name, [&f](const GenerationConfig& c) { return py::reinterpret_borrow<Get>(f.get(c)); },
      [&f](GenerationConfig& c, const Set& v) {
        GenerationConfig changed = c;
        f.set(changed, v);
        changed.validate();
        c = std::move(changed);
      },
      f.doc);
}

}  // namespace

void register_generation_config(py::module_& m) {
  std::vector<std::string_view> names;
  for (const Field& f : fields()) names.push_back(f.name);
  if (names != std::vector<std::string_view>(GenerationConfig::kFieldNames.begin(),
                                             GenerationConfig::kFieldNames.end())) {
    throw std::logic_error(
        "the GenerationConfig binding does not list GenerationConfig::kFieldNames");
  }

  py::class_<GenerationConfig> cls(
      m, "GenerationConfig",
      "What one generate()/chat() call asks for: sampling, length, stop strings, overflow "
      "policy.\n\n"
      "GenerationConfig(**options): keyword arguments only, each a field below; an unknown name or "
      "a\n"
      "wrong type is a TypeError, a value out of range a ValueError, both naming the field. An "
      "unset\n"
      "(None) sampling field means the model's default: with no sampling field set, the model's "
      "own\n"
      "sampling applies (post_config.json, else generation_config.json, else greedy); with any "
      "set,\n"
      "transformers' semantics apply with exactly those fields. Assigning a field validates it.");
  cls.def(
      py::init([](const py::kwargs& options) { return with_values(GenerationConfig{}, options); }));
  for (const Field& f : fields()) {
    const std::string kind = f.kind;
    if (kind == "int") {
      def_field<py::typing::Optional<py::int_>, py::typing::Optional<py::int_>>(cls, f);
    } else if (kind == "float") {
      def_field<py::typing::Optional<py::float_>, py::typing::Optional<py::float_>>(cls, f);
    } else if (kind == "list[str]") {
      def_field<py::typing::List<py::str>,
                py::typing::Optional<py::typing::Union<py::str, py::typing::Iterable<py::str>>>>(
          cls, f);
    } else {
      def_field<OverflowName, py::typing::Optional<OverflowName>>(cls, f);
    }
  }
  py::dict kinds;
  for (const Field& f : fields()) kinds[f.name] = f.kind;
  cls.attr("fields") = kinds;
  cls.def(
         "replace",
         [](const GenerationConfig& c, const py::kwargs& options) {
           return with_values(c, options);
         },
         "A copy with the given fields changed (validated).")
      .def("to_dict", &to_dict, "Every field and its value (None where unset).")
      .def_property_readonly(
          "has_sampling", &GenerationConfig::has_sampling,
          "Whether any sampling field is set (then the model's sampling defaults do "
          "not apply).")
      .def(
          "__eq__",
          [](const GenerationConfig& a, const py::object& b) -> py::object {
            if (!py::isinstance<GenerationConfig>(b))
              return py::reinterpret_borrow<py::object>(Py_NotImplemented);
            return py::bool_(a == b.cast<const GenerationConfig&>());
          },
          py::is_operator())
      .def("__copy__", [](const GenerationConfig& c) { return c; })
      .def(
          "__deepcopy__", [](const GenerationConfig& c, const py::dict&) { return c; },
          py::arg("memo"))
      .def("__repr__",
           [](const GenerationConfig& c) {
             std::string out = "GenerationConfig(";
             bool first = true;
             const GenerationConfig defaults;
             for (const Field& f : fields()) {
               if (f.get(c).equal(f.get(defaults))) continue;
               out +=
                   std::string(first ? "" : ", ") + f.name + "=" + std::string(py::repr(f.get(c)));
               first = false;
             }
             return out + ")";
           })
      .def(py::pickle([](const GenerationConfig& c) { return to_dict(c); },
                      [](const py::dict& d) { return with_values(GenerationConfig{}, d); }));
}

}  // namespace axllm::python
