#pragma once
// The host engine: a Backend whose models are ".hostmodel" files executed on the host CPU with
// exactly the groups, tensor names, shapes and dtypes of the pulsar2-compiled layer they stand for.
#include <memory>
#include <mutex>

#include "axllm/backend.h"
#include "host/host_model_file.h"
#include "host/workspace.h"
#include "util/thread_pool.h"

namespace axllm::detail {

// State shared by every model of one host backend: threads and scratch, used one run at a time.
struct HostCompute {
  HostCompute(int n_threads, bool compute_enabled) : pool(n_threads), compute(compute_enabled) {}
  std::mutex mutex;
  ThreadPool pool;
  Workspace workspace;
  bool compute;
};

// The group specs a layer or post file exposes (pure function of its header; used by tests).
std::vector<GroupSpec> host_model_groups(const HostModelHeader& header);

// `compute` false gives an engine whose runs check their bindings and return at once (outputs
// untouched): it measures the runtime's own per-token cost.
std::shared_ptr<Backend> make_host_backend(int n_threads, bool compute = true);

}  // namespace axllm::detail
