#pragma once
// What a killed process frees on its way out: the vendor backends record every live device/CMM
// block here, so that SIGTERM (and SIGINT where it still has its default action, i.e. outside
// Python) frees what would otherwise leak on the device until reboot, and so that exit and the
// owners agree on who frees each block exactly once.
//
// The signal handler only walks a fixed table in static storage with atomic compare-and-swap (no
// map, no allocation, no lock), calls each live block's vendor free function, then restores the
// default action and re-raises the signal. The vendor free functions are not documented as
// async-signal-safe: freeing on a signal is best effort (the alternative is a certain leak). It
// can miss a block being recorded or being freed on the interrupted thread at that instant, a
// block recorded while the table was full, and can block if the vendor library was interrupted
// holding a lock of its own. In Python, SIGINT raises KeyboardInterrupt instead: unwinding and
// interpreter exit free memory through the owners and the exit hooks, never from a handler.
#include <cstdint>

namespace axllm::detail::vendor_blocks {

// Frees one block, given the two words recorded with it: from the signal handler
// (`in_signal`, on whichever thread took the signal) or at exit (on a normal thread).
using FreeFn = void (*)(uint64_t handle, void* context, bool in_signal);

// Table size: blocks beyond it still get freed by their owner, not on a signal or at exit.
inline constexpr int kCapacity = 8192;

// Records a live block. Returns its slot, or -1 when the table is full (logged once). Installs
// the signal handlers on first use. Thread-safe, lock-free.
int record(FreeFn free, uint64_t handle, void* context);
// Claims `slot` for its owner to free: true exactly once per recorded block across claim,
// free_all and the signal handler (false: exit or a signal already freed it). After a true claim
// the owner frees the block, then calls release(slot). A slot of -1 always claims.
bool claim(int slot);
void release(int slot);
// At exit (never from a signal handler): claims and frees every live block. Claimed slots are
// never reused: a late owner's claim returns false.
void free_all();

}  // namespace axllm::detail::vendor_blocks
