#include "util/sigterm_cleanup.h"

#include <atomic>
#include <csignal>
#include <mutex>

namespace axllm::detail {
namespace {

constexpr int kMaxCleanups = 8;
std::atomic<void (*)()> g_cleanups[kMaxCleanups];

void on_sigterm(int sig) {
  for (auto& slot : g_cleanups) {
    if (void (*fn)() = slot.load()) fn();
  }
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}

}  // namespace

void add_sigterm_cleanup(void (*fn)()) {
  static std::mutex mutex;
  std::lock_guard<std::mutex> lock(mutex);
  for (auto& slot : g_cleanups) {
    void (*current)() = slot.load();
    if (current == fn) return;
    if (current == nullptr) {
      slot.store(fn);
      break;
    }
  }
  static bool installed = false;
  if (installed) return;
  installed = true;
  struct sigaction current {};
  if (::sigaction(SIGTERM, nullptr, &current) == 0 && current.sa_handler == SIG_DFL) {
    struct sigaction sa {};
    sa.sa_handler = on_sigterm;
    sigemptyset(&sa.sa_mask);
    ::sigaction(SIGTERM, &sa, nullptr);
  }
}

}  // namespace axllm::detail
