// The vendor block table behind the backends' "freed exactly once" promise: an owner's claim, exit
// (free_all) and the signal handler each free a block at most once between them, slots are reused
// only after their owner releases them, a full table hands out -1 (the owner still frees), and
// SIGTERM in a child frees every live block from the handler (recording through write(2), which
// is async-signal-safe), none claimed by an owner, then dies of SIGTERM.
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <cstdint>
#include <map>
#include <vector>

#include "check.h"
#include "util/vendor_blocks.h"

namespace vb = axllm::detail::vendor_blocks;

namespace {

std::map<uint64_t, int> g_freed;  // handle -> times freed (parent-side tests, no signal)
int g_pipe = -1;                  // child: where the signal handler reports frees

void count_free(uint64_t handle, void*, bool) { ++g_freed[handle]; }

void report_free(uint64_t handle, void* context, bool in_signal) {
  const uint64_t record[3] = {handle, reinterpret_cast<uintptr_t>(context), in_signal ? 1u : 0u};
  const ssize_t ignored = ::write(g_pipe, record, sizeof record);
  (void)ignored;
}

}  // namespace

int main() {
  // Owner claims once; free_all skips what owners hold and frees the rest once; late owners lose.
  const int a = vb::record(count_free, 1, nullptr);
  const int b = vb::record(count_free, 2, nullptr);
  const int c = vb::record(count_free, 3, nullptr);
  CHECK(a >= 0 && b >= 0 && c >= 0 && a != b && b != c);
  CHECK(vb::claim(a));
  CHECK(!vb::claim(a));  // claimed: nobody else frees it
  vb::free_all();
  CHECK(g_freed.count(1) == 0);
  CHECK(g_freed[2] == 1 && g_freed[3] == 1);
  CHECK(!vb::claim(b) && !vb::claim(c));  // exit freed them: the owners must not
  vb::free_all();
  CHECK(g_freed[2] == 1 && g_freed[3] == 1);
  vb::release(a);
  CHECK(vb::claim(-1));  // untracked blocks are always their owner's to free

  // Released slots are reused; claimed-at-exit slots never are; a full table gives -1.
  std::vector<int> slots;
  bool reused_claimed = false;
  for (int i = 0; i < vb::kCapacity; ++i) {
    const int s = vb::record(count_free, 100 + static_cast<uint64_t>(i), nullptr);
    if (s < 0) break;
    reused_claimed = reused_claimed || s == b || s == c;
    slots.push_back(s);
  }
  CHECK(!reused_claimed);
  CHECK(static_cast<int>(slots.size()) == vb::kCapacity - 2);
  CHECK(vb::record(count_free, 99, nullptr) == -1);
  int claimed = 0;
  for (int s : slots) {
    claimed += vb::claim(s) ? 1 : 0;
    vb::release(s);
  }
  CHECK(claimed == vb::kCapacity - 2);

  // SIGTERM in a child: the handler frees the live blocks once, in the signal, and re-raises.
  int fds[2];
  CHECK(::pipe(fds) == 0);
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::close(fds[0]);
    g_pipe = fds[1];  // the handler was installed by the first record() above
    int dummy = 0;
    const int live1 = vb::record(report_free, 11, &dummy);
    const int held = vb::record(report_free, 12, &dummy);
    vb::record(report_free, 13, nullptr);
    if (live1 < 0 || !vb::claim(held)) ::_exit(3);  // 12 is being freed by its owner
    ::raise(SIGTERM);
    ::_exit(4);  // not reached: the handler re-raises with the default action
  }
  ::close(fds[1]);
  std::map<uint64_t, int> freed;
  uint64_t record[3];
  bool all_in_signal = true;
  while (::read(fds[0], record, sizeof record) == static_cast<ssize_t>(sizeof record)) {
    ++freed[record[0]];
    all_in_signal = all_in_signal && record[2] == 1;
  }
  int status = 0;
  CHECK(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
  CHECK(freed.size() == 2 && freed[11] == 1 && freed[13] == 1);
  CHECK(all_in_signal);
  return axllm_test::finish("test_vendor_blocks");
}
