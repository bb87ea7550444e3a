#pragma once
// Cleanups to run when the process is killed by SIGTERM, before it dies with that signal: the
// vendor backends free device memory that a killed process would otherwise leak until reboot.
// One handler serves every backend, installed only where SIGTERM still has its default action.

namespace axllm::detail {

// Registers `fn` (at most 8 distinct functions; duplicates are ignored). Thread-safe. `fn` runs
// in the signal handler, on whichever thread received the signal.
void add_sigterm_cleanup(void (*fn)());

}  // namespace axllm::detail
