#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <pybind11/typing.h>

#include <algorithm>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "axllm/backends.h"
#include "axllm/errors.h"
#include "axllm/llm.h"
#include "bindings.h"
#include "strict_cast.h"

namespace py = pybind11;

namespace axllm::python {
namespace {

// ax-llm's file overrides (its config.json keys, LLM(overrides=...)), one entry per field of
// ModelOverrides: the binding reads them from this table and exports the names as
// _core.MODEL_OVERRIDE_KEYS, which axllm.model_dir uses to pick them out of config.json.
struct OverrideField {
  const char* name;
  std::function<void(ModelOverrides&, py::handle)> set;
};

const std::vector<OverrideField>& override_fields() {
  static const std::vector<OverrideField> table = {
      {"template_filename_axmodel",
       [](ModelOverrides& o, py::handle v) {
         o.template_filename_axmodel = strict_cast<std::string>(v, "template_filename_axmodel");
       }},
      {"axmodel_num", [](ModelOverrides& o,
                         py::handle v) { o.axmodel_num = strict_cast<int32_t>(v, "axmodel_num"); }},
      {"filename_post_axmodel",
       [](ModelOverrides& o, py::handle v) {
         o.filename_post_axmodel = strict_cast<std::string>(v, "filename_post_axmodel");
       }},
      {"filename_tokens_embed",
       [](ModelOverrides& o, py::handle v) {
         o.filename_tokens_embed = strict_cast<std::string>(v, "filename_tokens_embed");
       }},
      {"tokens_embed_num",
       [](ModelOverrides& o, py::handle v) {
         o.tokens_embed_num = strict_cast<int64_t>(v, "tokens_embed_num");
       }},
      {"tokens_embed_size",
       [](ModelOverrides& o, py::handle v) {
         o.tokens_embed_size = strict_cast<int64_t>(v, "tokens_embed_size");
       }},
  };
  return table;
}

ModelOverrides overrides_from(const py::dict& d) {
  ModelOverrides o;
  for (auto item : d) {
    const std::string key = py::str(item.first);
    const auto& table = override_fields();
    const auto field = std::find_if(table.begin(), table.end(),
                                    [&](const OverrideField& f) { return key == f.name; });
    if (field == table.end()) throw std::invalid_argument("unknown model override '" + key + "'");
    if (!item.second.is_none()) field->set(o, item.second);
  }
  return o;
}

py::dict metrics_dict(const GenerationMetrics& m) {
  py::dict d;
  d["prompt_tokens"] = m.prompt_tokens;
  d["generated_tokens"] = m.generated_tokens;
  d["cached_tokens"] = m.cached_tokens;
  d["prefilled_tokens"] = m.prefilled_tokens;
  d["prefill_ms"] = m.prefill_ms;
  d["ttft_ms"] = m.ttft_ms;
  d["decode_ms"] = m.decode_ms;
  d["prefill_tokens_per_s"] = m.prefill_tokens_per_s();
  d["decode_tokens_per_s"] = m.decode_tokens_per_s();
  return d;
}

using FinishValue = py::typing::Optional<py::str>;

// None while running, else the finish reason's name.
FinishValue finish_value(FinishReason r) {
  if (r == FinishReason::kNone) return py::reinterpret_borrow<FinishValue>(py::none());
  return py::reinterpret_steal<FinishValue>(py::str(finish_reason_name(r)).release());
}

}  // namespace

void register_llm(py::module_& m) {
  py::tuple override_keys(override_fields().size());
  for (size_t i = 0; i < override_fields().size(); ++i)
    override_keys[i] = py::str(override_fields()[i].name);
  m.attr("MODEL_OVERRIDE_KEYS") = override_keys;

  static py::exception<ContextOverflowError> overflow(m, "ContextOverflowError",
                                                      m.attr("AxllmError").ptr());
  overflow.doc() =
      "The prompt (and what must follow it) does not fit the context; .needed, .available.";
  // Typed defaults for the attributes every raised instance sets (the stubs show them).
  overflow.attr("needed") = 0;
  overflow.attr("available") = 0;
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ContextOverflowError& e) {
      py::object inst = py::reinterpret_borrow<py::object>(overflow.ptr())(e.what());
      inst.attr("needed") = e.needed();
      inst.attr("available") = e.available();
      PyErr_SetObject(overflow.ptr(), inst.ptr());
    }
  });

  py::class_<StepResult>(
      m, "Step",
      "What one Generation step did: a prefill chunk (progress), a token, or the finish.")
      .def_readonly("token", &StepResult::token, "The token sampled, or -1.")
      .def_property_readonly(
          "finish_reason", [](const StepResult& r) { return finish_value(r.finish); },
          "None while the generation goes on; else why it finished.")
      .def_readonly("stop_token", &StepResult::stop_token,
                    "The EOS id sampled (finish 'stop'), or -1.")
      .def_readonly("prefill_done", &StepResult::prefill_done,
                    "Prompt tokens prefilled so far (0 on steps that ran no prefill chunk).")
      .def_readonly(
          "prefill_total", &StepResult::prefill_total,
          "Prompt tokens to prefill (the prompt minus the reused prefix); 0 on steps that ran no "
          "prefill chunk.")
      .def("__repr__", [](const StepResult& r) {
        return "Step(token=" + std::to_string(r.token) +
               ", finish_reason=" + std::string(py::repr(finish_value(r.finish))) +
               ", prefill=" + std::to_string(r.prefill_done) + "/" +
               std::to_string(r.prefill_total) + ")";
      });

  py::class_<Generation>(m, "Generation", "One generation, advanced a step at a time by next().")
      .def("__iter__", [](py::object self) { return self; })
      .def(
          "__next__",
          [](Generation& g) {
            if (g.finish_reason() != FinishReason::kNone) throw py::stop_iteration();
            py::gil_scoped_release release;
            return g.next();
          },
          "Runs one step (GIL released) and returns its Step; StopIteration once a finish has been "
          "returned.")
      .def(
          "run_steps",
          [](Generation& g, int64_t n) {
            py::gil_scoped_release release;
            int64_t done = 0;
            while (done < n && g.finish_reason() == FinishReason::kNone) {
              g.next();
              ++done;
            }
            return done;
          },
          py::arg("n"), "Run up to n steps in C++ without returning to Python (for benchmarks).")
      .def("cancel", &Generation::cancel,
           "Cancel at the next chunk, layer or step boundary (any thread).")
      .def_property_readonly("finish_reason",
                             [](const Generation& g) { return finish_value(g.finish_reason()); })
      .def_property_readonly("metrics",
                             [](const Generation& g) { return metrics_dict(g.metrics()); })
      .def_property_readonly("tokens", [](const Generation& g) { return g.tokens(); })
      .def_property_readonly("prompt", [](const Generation& g) { return g.prompt(); });

  py::class_<Llm, std::shared_ptr<Llm>>(m, "LLM",
                                        "A loaded pulsar2-shaped model (the C++ runtime).")
      .def(py::init([](const std::string& path, const std::string& backend,
                       const py::dict& overrides,
                       const std::optional<std::function<void(int, int)>>& progress,
                       const std::vector<int>& devices) {
             const ModelOverrides o = overrides_from(overrides);
             py::gil_scoped_release release;
             const ModelFiles files = discover_model_files(path, o);
             Llm::Progress cb;
             if (progress && *progress) {
               cb = [&progress](int done, int total) {
                 py::gil_scoped_acquire gil;
                 (*progress)(done, total);
               };
             }
             return Llm::load(select_backend(backend, files.layers.at(0), devices), files, cb);
           }),
           py::arg("path"), py::arg("backend") = "auto", py::arg("overrides") = py::dict(),
           py::arg("progress") = py::none(), py::arg("devices") = std::vector<int>{})
      .def_property_readonly("backend", &Llm::backend_name)
      .def_property_readonly("geometry",
                             [](const Llm& l) {
                               const ModelGeometry& g = l.geometry();
                               py::dict d;
                               d["n_layers"] = g.n_layers;
                               d["n_groups"] = g.n_groups;
                               d["hidden"] = g.hidden;
                               d["kv_dim"] = g.kv_dim;
                               d["kv_len"] = g.kv_len;
                               d["prefill_len"] = g.prefill_len;
                               d["vocab"] = g.vocab;
                               d["history_capacity"] = g.history_capacity;
                               d["io_dtype"] = dtype_name(g.io_dtype);
                               return d;
                             })
      .def_property_readonly("files",
                             [](const Llm& l) {
                               const ModelFiles& f = l.files();
                               py::dict d;
                               d["root"] = f.root;
                               d["layer_template"] = f.layer_template;
                               d["layers"] = f.layers;
                               d["post"] = f.post;
                               d["embeddings"] = f.embeddings;
                               return d;
                             })
      .def(
          "set_defaults",
          [](Llm& l, std::vector<int32_t> eos_ids, const py::dict& sampling) {
            l.set_defaults(std::move(eos_ids), sampling_params_from(sampling));
          },
          py::arg("eos_ids"), py::arg("sampling"),
          "Set the EOS ids and the sampling used when a config sets no sampling field (a dict as "
          "Sampler takes).")
      .def_property_readonly("eos_ids", &Llm::eos_ids)
      .def_property_readonly(
          "default_sampling",
          [](const Llm& l) { return sampling_params_dict(l.default_sampling()); })
      .def(
          "prompt_limit", [](const Llm& l, const GenerationConfig& c) { return l.prompt_limit(c); },
          py::arg("config"),
          "Prompt tokens a generation under config accepts (its overflow policy's limit).")
      .def(
          "fit_prompt",
          [](const Llm& l, std::vector<int32_t> prompt, const GenerationConfig& c) {
            return l.fit_prompt(std::move(prompt), c);
          },
          py::arg("prompt"), py::arg("config"),
          "The prompt checked and fitted per config.overflow; ContextOverflowError when it cannot "
          "fit.")
      .def_property_readonly(
          "kv_tokens", py::cpp_function(&Llm::kv_tokens, py::call_guard<py::gil_scoped_release>()))
      .def(
          "generate",
          [](Llm& l, std::vector<int32_t> prompt, const std::optional<GenerationConfig>& config,
             bool reuse_kv) {
            return l.generate(std::move(prompt), config.value_or(GenerationConfig{}), reuse_kv);
          },
          py::arg("prompt"), py::arg("config") = py::none(), py::arg("reuse_kv") = true,
          "Start a generation over token ids under config (None: the defaults); iterate it (each\n"
          "__next__ runs one step and returns a Step).")
      .def("stop", &Llm::stop, "Cancel the running generation from any thread.")
      .def("rewind", &Llm::rewind, py::arg("n"), py::call_guard<py::gil_scoped_release>(),
           "Drop the last n cached tokens (not below the pinned prefix).")
      .def("pin_prefix", &Llm::pin_prefix, py::arg("n"), py::call_guard<py::gil_scoped_release>(),
           "Keep the first n cached tokens across reset().")
      .def_property_readonly(
          "pinned_prefix",
          py::cpp_function(&Llm::pinned_prefix, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly(
          "kv_size", py::cpp_function(&Llm::kv_size, py::call_guard<py::gil_scoped_release>()))
      .def(
          "snapshot",
          [](const Llm& l) {
            KvSnapshot s;
            {
              py::gil_scoped_release release;
              s = l.snapshot();
            }
            py::list k, v;
            for (const auto& rows : s.k)
              k.append(py::bytes(reinterpret_cast<const char*>(rows.data()), rows.size()));
            for (const auto& rows : s.v)
              v.append(py::bytes(reinterpret_cast<const char*>(rows.data()), rows.size()));
            return py::make_tuple(s.tokens, k, v, s.pinned);
          },
          "(tokens, [K rows per layer], [V rows per layer], pinned) of the cache, read under one "
          "lock.")
      .def(
          "restore",
          [](Llm& l, std::vector<int32_t> tokens, const std::vector<py::bytes>& k,
             const std::vector<py::bytes>& v, int64_t pinned) {
            KvSnapshot s;
            s.tokens = std::move(tokens);
            s.pinned = pinned;
            for (const auto& b : k) {
              const std::string_view rows = b;
              s.k.emplace_back(rows.begin(), rows.end());
            }
            for (const auto& b : v) {
              const std::string_view rows = b;
              s.v.emplace_back(rows.begin(), rows.end());
            }
            py::gil_scoped_release release;
            l.restore(s);
          },
          py::arg("tokens"), py::arg("k"), py::arg("v"), py::arg("pinned") = 0,
          "Replace the cache with these tokens and rows, the first `pinned` of them pinned.")
      .def("extend", &Llm::extend, py::arg("tokens"), py::call_guard<py::gil_scoped_release>(),
           "Prefill tokens after the cached ones without sampling.")
      .def("reset", &Llm::reset, py::call_guard<py::gil_scoped_release>(), "Empty the KV cache.")
      .def("close", &Llm::close, py::call_guard<py::gil_scoped_release>(),
           "Cancel any generation and free every engine model and buffer; later calls raise "
           "ClosedError.")
      .def_property_readonly("closed", &Llm::closed);
}

}  // namespace axllm::python
