#include <pybind11/functional.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "axllm/backends.h"
#include "axllm/errors.h"
#include "axllm/llm.h"
#include "bindings.h"

namespace py = pybind11;

namespace axllm::python {
namespace {

template <class T>
void take(const py::dict& d, const char* key, T& out) {
  if (d.contains(key) && !d[key].is_none()) out = d[key].cast<T>();
}

ModelOverrides overrides_from(const py::dict& d) {
  ModelOverrides o;
  for (auto item : d) {
    const std::string key = py::str(item.first);
    if (key != "template_filename_axmodel" && key != "axmodel_num" && key != "filename_post_axmodel" &&
        key != "filename_tokens_embed" && key != "tokens_embed_num" && key != "tokens_embed_size") {
      throw std::invalid_argument("unknown model override '" + key + "'");
    }
  }
  take(d, "template_filename_axmodel", o.template_filename_axmodel);
  take(d, "axmodel_num", o.axmodel_num);
  take(d, "filename_post_axmodel", o.filename_post_axmodel);
  take(d, "filename_tokens_embed", o.filename_tokens_embed);
  take(d, "tokens_embed_num", o.tokens_embed_num);
  take(d, "tokens_embed_size", o.tokens_embed_size);
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

py::object finish_value(FinishReason r) {
  if (r == FinishReason::kNone) return py::none();
  return py::str(finish_reason_name(r));
}

}  // namespace

void register_llm(py::module_& m) {
  static py::exception<ContextOverflowError> overflow(
      m, "ContextOverflowError", m.attr("AxllmError").ptr());
  overflow.doc() = "The prompt (and what must follow it) does not fit the context; .needed, .available.";
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

  py::class_<Generation>(m, "Generation", "One generation, advanced a step at a time by next().")
      .def("__iter__", [](py::object self) { return self; })
      .def(
          "__next__",
          [](Generation& g) {
            if (g.finish_reason() != FinishReason::kNone) throw py::stop_iteration();
            StepResult r;
            {
              py::gil_scoped_release release;
              r = g.next();
            }
            return py::make_tuple(r.token, finish_value(r.finish), r.stop_token);
          },
          "Runs one step (GIL released): (token or -1, finish reason or None, stop token or -1);\n"
          "StopIteration once a finish has been returned.")
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
      .def("cancel", &Generation::cancel, "Cancel at the next chunk, layer or step boundary.")
      .def_property_readonly("finish_reason", [](const Generation& g) { return finish_value(g.finish_reason()); })
      .def_property_readonly("metrics", [](const Generation& g) { return metrics_dict(g.metrics()); })
      .def_property_readonly("tokens", [](const Generation& g) { return g.tokens(); })
      .def_property_readonly("prompt", [](const Generation& g) { return g.prompt(); });

  py::class_<Llm, std::shared_ptr<Llm>>(m, "LLM", "A loaded pulsar2-shaped model (the C++ runtime).")
      .def(py::init([](const std::string& path, const std::string& backend, const py::dict& overrides,
                       const std::function<void(int, int)>& progress, const std::vector<int>& devices) {
             const ModelOverrides o = overrides_from(overrides);
             py::gil_scoped_release release;
             const ModelFiles files = discover_model_files(path, o);
             Llm::Progress cb;
             if (progress) {
               cb = [&progress](int done, int total) {
                 py::gil_scoped_acquire gil;
                 progress(done, total);
               };
             }
             return Llm::load(select_backend(backend, files.layers.at(0), devices), files, cb);
           }),
           py::arg("path"), py::arg("backend") = "auto", py::arg("overrides") = py::dict(),
           py::arg("progress") = nullptr, py::arg("devices") = std::vector<int>{})
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
      // Every call that takes the model's lock releases the GIL first: a step holding the lock may
      // be waiting for the GIL (a prefill_progress callback), so waiting for the lock with the GIL
      // held would deadlock.
      .def_property_readonly("kv_tokens", py::cpp_function(&Llm::kv_tokens, py::call_guard<py::gil_scoped_release>()))
      .def(
          "generate",
          [](Llm& l, std::vector<int32_t> prompt, int32_t max_new_tokens, std::vector<int32_t> eos_ids,
             const py::dict& sampling, bool reuse_kv, const py::object& prefill_progress) {
            GenerationOptions o;
            o.reuse_kv = reuse_kv;
            o.max_new_tokens = max_new_tokens;
            o.eos_ids = std::move(eos_ids);
            o.sampling = sampling_params_from(sampling);
            if (!prefill_progress.is_none()) {
              if (!PyCallable_Check(prefill_progress.ptr())) {
                throw py::type_error("prefill_progress must be callable or None");
              }
              // Called with the GIL released (a step runs without it); the callable is released
              // with the GIL held, whichever thread drops the last copy.
              std::shared_ptr<py::object> fn(new py::object(prefill_progress), [](py::object* f) {
                py::gil_scoped_acquire gil;
                delete f;
              });
              o.prefill_progress = [fn](int64_t done, int64_t total) {
                py::gil_scoped_acquire gil;
                (*fn)(done, total);
              };
            }
            return l.generate(std::move(prompt), std::move(o));
          },
          py::arg("prompt"), py::arg("max_new_tokens") = -1, py::arg("eos_ids") = std::vector<int32_t>{},
          py::arg("sampling") = py::dict(), py::arg("reuse_kv") = true, py::arg("prefill_progress") = py::none(),
          py::keep_alive<0, 1>(),
          "Start a generation over token ids; iterate it (each __next__ runs one step).\n"
          "prefill_progress(done, total), if given, is called after each prefill chunk.")
      .def("stop", &Llm::stop, "Cancel the running generation from any thread.")
      .def("rewind", &Llm::rewind, py::arg("n"), py::call_guard<py::gil_scoped_release>(),
           "Drop the last n cached tokens (not below the pinned prefix).")
      .def("pin_prefix", &Llm::pin_prefix, py::arg("n"), py::call_guard<py::gil_scoped_release>(),
           "Keep the first n cached tokens across reset().")
      .def_property_readonly("pinned_prefix",
                             py::cpp_function(&Llm::pinned_prefix, py::call_guard<py::gil_scoped_release>()))
      .def_property_readonly("kv_size", py::cpp_function(&Llm::kv_size, py::call_guard<py::gil_scoped_release>()))
      .def(
          "read_kv",
          [](const Llm& l, int layer, bool values, int64_t rows) {
            std::vector<uint8_t> out;
            {
              py::gil_scoped_release release;
              out = l.read_kv(layer, values, rows);
            }
            return py::bytes(reinterpret_cast<const char*>(out.data()), out.size());
          },
          py::arg("layer"), py::arg("values"), py::arg("rows"), "Raw K (or V) rows of a layer.")
      .def(
          "load_kv",
          [](Llm& l, std::vector<int32_t> tokens, const std::vector<py::bytes>& k, const std::vector<py::bytes>& v) {
            std::vector<std::vector<uint8_t>> kk, vv;
            for (const auto& b : k) {
              const std::string s = b;
              kk.emplace_back(s.begin(), s.end());
            }
            for (const auto& b : v) {
              const std::string s = b;
              vv.emplace_back(s.begin(), s.end());
            }
            py::gil_scoped_release release;
            l.load_kv(tokens, kk, vv);
          },
          py::arg("tokens"), py::arg("k"), py::arg("v"), "Replace the cache with these tokens and rows.")
      .def("extend", &Llm::extend, py::arg("tokens"), py::call_guard<py::gil_scoped_release>(),
           "Prefill tokens after the cached ones without sampling.")
      .def("reset", &Llm::reset, py::call_guard<py::gil_scoped_release>(), "Empty the KV cache.");
}

}  // namespace axllm::python
