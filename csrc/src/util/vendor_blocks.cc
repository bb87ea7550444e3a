#include "util/vendor_blocks.h"

#include <atomic>
#include <cerrno>
#include <csignal>
#include <mutex>

#include "axllm/log.h"

namespace axllm::detail::vendor_blocks {
namespace {

enum State : uint32_t { kFree = 0, kWriting = 1, kLive = 2, kClaimed = 3 };

// Fields other than `state` are written while the recorder holds kWriting and read only after a
// successful kLive -> kClaimed exchange (acquire pairs with the recorder's release).
struct Entry {
  std::atomic<uint32_t> state;
  FreeFn free;
  uint64_t handle;
  void* context;
};
static_assert(std::atomic<uint32_t>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

Entry g_entries[kCapacity];  // zero-initialised static storage: every slot kFree
std::atomic<int> g_hint{0};  // where the next record starts looking

void on_fatal_signal(int sig) {
  const int saved_errno = errno;
  for (Entry& e : g_entries) {
    uint32_t live = kLive;
    if (e.state.compare_exchange_strong(live, kClaimed, std::memory_order_acq_rel))
      e.free(e.handle, e.context, true);
  }
  struct sigaction dfl{};
  dfl.sa_handler = SIG_DFL;
  sigemptyset(&dfl.sa_mask);
  ::sigaction(sig, &dfl, nullptr);
  ::raise(sig);  // pending while the handler runs (the signal is blocked); kills on return
  errno = saved_errno;
}

// Installs on_fatal_signal for each signal still at its default action (Python's own SIGINT
// handler, or a handler the application set, is left alone).
void install_handlers() {
  for (int sig : {SIGTERM, SIGINT}) {
    struct sigaction current{};
    if (::sigaction(sig, nullptr, &current) != 0 || (current.sa_flags & SA_SIGINFO) ||
        current.sa_handler != SIG_DFL) {
      continue;
    }
    struct sigaction sa{};
    sa.sa_handler = on_fatal_signal;
    sigemptyset(&sa.sa_mask);
    sigaddset(&sa.sa_mask, SIGTERM);
    sigaddset(&sa.sa_mask, SIGINT);
    ::sigaction(sig, &sa, nullptr);
  }
}

}  // namespace

int record(FreeFn free, uint64_t handle, void* context) {
  static std::once_flag installed;
  std::call_once(installed, install_handlers);
  const int start = g_hint.load(std::memory_order_relaxed);
  for (int k = 0; k < kCapacity; ++k) {
    const int i = (start + k) % kCapacity;
    Entry& e = g_entries[i];
    uint32_t free_state = kFree;
    if (!e.state.compare_exchange_strong(free_state, kWriting, std::memory_order_acquire)) continue;
    e.free = free;
    e.handle = handle;
    e.context = context;
    e.state.store(kLive, std::memory_order_release);
    g_hint.store((i + 1) % kCapacity, std::memory_order_relaxed);
    return i;
  }
  static std::atomic<bool> warned{false};
  if (!warned.exchange(true)) {
    log(LogLevel::kWarning,
        "more than " + std::to_string(kCapacity) +
            " live device memory blocks: the rest are not freed on SIGTERM or at exit");
  }
  return -1;
}

bool claim(int slot) {
  if (slot < 0) return true;
  uint32_t live = kLive;
  return g_entries[slot].state.compare_exchange_strong(live, kClaimed, std::memory_order_acq_rel);
}

void release(int slot) {
  if (slot >= 0) g_entries[slot].state.store(kFree, std::memory_order_release);
}

void free_all() {
  for (Entry& e : g_entries) {
    uint32_t live = kLive;
    if (e.state.compare_exchange_strong(live, kClaimed, std::memory_order_acq_rel))
      e.free(e.handle, e.context, false);
  }
}

}  // namespace axllm::detail::vendor_blocks
