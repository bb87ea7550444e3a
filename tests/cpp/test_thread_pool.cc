// parallel_for covers every index exactly once; run calls every share exactly once; regions from
// several callers do not interleave; workers that blocked between regions are woken for the next;
// workers held off their core do not hold up regions; waiting threads (idle workers, a caller
// waiting for a worker's task) give their core away instead of spinning. Pool threads only touch
// atomics; CHECK runs on the main thread.
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <ctime>
#include <mutex>
#include <thread>
#include <vector>

#include "check.h"
#include "util/thread_pool.h"

using axllm::detail::ThreadPool;
using Clock = std::chrono::steady_clock;

namespace {

double cpu_seconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// Waits (yielding) until cond() holds or `limit` passes; returns whether cond() held.
template <class Cond>
bool wait_for(Cond cond, std::chrono::milliseconds limit) {
  const auto end = Clock::now() + limit;
  while (!cond()) {
    if (Clock::now() > end) return false;
    std::this_thread::yield();
  }
  return true;
}

void test_coverage(ThreadPool& pool) {
  for (size_t n : {0, 1, 5, 16, 17, 1000, 100000}) {
    for (size_t grain : {1, 4, 16, 64}) {
      std::vector<std::atomic<int>> hits(n);
      std::atomic<int> bad_ranges{0};
      pool.parallel_for(n, grain, [&](size_t b, size_t e) {
        if (!(b < e && b % grain == 0 && e <= n)) bad_ranges++;
        for (size_t i = b; i < e; ++i) hits[i]++;
      });
      CHECK(bad_ranges.load() == 0);
      int wrong = 0;
      for (size_t i = 0; i < n; ++i) wrong += hits[i].load() != 1;
      CHECK(wrong == 0);
    }
  }
}

// Many short regions, some after gaps long enough for the workers to block: every share of
// every run is called exactly once, with the pool's size.
void test_every_share_once(ThreadPool& pool) {
  const int nt = pool.size();
  std::vector<std::atomic<long>> calls(static_cast<size_t>(nt));
  std::atomic<int> bad_nt{0};
  const int runs = 20000;
  for (int r = 0; r < runs; ++r) {
    if (r % 500 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    pool.run([&](int t, int n) {
      if (n != nt || t < 0 || t >= nt) {
        bad_nt++;
        return;
      }
      calls[static_cast<size_t>(t)]++;
    });
  }
  CHECK(bad_nt.load() == 0);
  for (int t = 0; t < nt; ++t) CHECK(calls[static_cast<size_t>(t)].load() == runs);
}

void test_callers_serialized(ThreadPool& pool) {
  const int threads = pool.size();
  std::atomic<int> inside{0};
  std::atomic<int> overlap{0};
  std::atomic<long> total{0};
  std::vector<std::thread> callers;
  for (int c = 0; c < 4; ++c) {
    callers.emplace_back([&] {
      for (int r = 0; r < 200; ++r) {
        pool.run([&](int t, int nt) {
          if (t == 0 && inside.fetch_add(1) != 0) overlap++;
          total += nt;
          if (t == 0) inside.fetch_sub(1);
        });
      }
    });
  }
  for (auto& t : callers) t.join();
  CHECK(overlap.load() == 0);
  CHECK(total.load() == 4L * 200 * threads * threads);
}

// Every share waits until all shares have started, which needs all size() threads at once:
// after the idle gap (short: workers spinning; long: workers blocked in the kernel) every worker
// must have been woken. A lost wake-up shows as a share that times out.
void test_wakeups_after_blocking(ThreadPool& pool) {
  const int nt = pool.size();
  int timeouts = 0;
  for (int r = 0; r < 60; ++r) {
    const int gap_us = (r % 3 == 0) ? 0 : (r % 3 == 1) ? 10 : 3000;
    if (gap_us) std::this_thread::sleep_for(std::chrono::microseconds(gap_us));
    std::atomic<int> started{0};
    std::atomic<int> missed{0};
    pool.run([&](int, int) {
      started++;
      if (!wait_for([&] { return started.load() == nt; }, std::chrono::milliseconds(5000)))
        missed++;
    });
    timeouts += missed.load();
  }
  CHECK(timeouts == 0);
}

// Stands in for the scheduler taking a worker off its core: a signal whose handler holds the
// thread until released.
std::atomic<bool> g_hold{false};
std::atomic<int> g_held{0};

void hold_handler(int) {
  g_held++;
  const timespec nap{0, 100000};
  while (g_hold.load()) nanosleep(&nap, nullptr);
  g_held--;
}

// Workers held wherever they are (spinning, blocked, between a claim and a task) must not hold
// up regions: the threads still running (here the caller alone) take over every task, each task
// still runs exactly once, and the held workers, once released, take no task of a region that has
// ended. A pool that gives each worker a fixed share would wait for the held ones.
void test_held_workers_do_not_hold_regions(ThreadPool& pool) {
  const int nt = pool.size();
  std::vector<pid_t> tids;
  std::mutex tids_mutex;
  std::atomic<int> started{0};
  pool.run([&](int, int) {
    started++;
    wait_for([&] { return started.load() == nt; }, std::chrono::milliseconds(5000));
    if (syscall(SYS_gettid) != getpid()) {
      std::lock_guard<std::mutex> lock(tids_mutex);
      tids.push_back(static_cast<pid_t>(syscall(SYS_gettid)));
    }
  });
  CHECK(static_cast<int>(tids.size()) == nt - 1);

  struct sigaction sa{};
  sa.sa_handler = hold_handler;
  sigemptyset(&sa.sa_mask);
  struct sigaction old{};
  sigaction(SIGUSR1, &sa, &old);
  for (int round = 0; round < 20; ++round) {
    g_hold = true;
    for (pid_t tid : tids) syscall(SYS_tgkill, getpid(), tid, SIGUSR1);
    CHECK(wait_for([&] { return g_held.load() == static_cast<int>(tids.size()); },
                   std::chrono::milliseconds(5000)));

    std::atomic<bool> finished{false};
    std::atomic<int> wrong{0};
    std::thread caller([&] {
      for (int r = 0; r < 50; ++r) {
        const size_t n = 1000;
        std::vector<std::atomic<int>> hits(n);
        pool.parallel_for(n, 16, [&](size_t b, size_t e) {
          for (size_t i = b; i < e; ++i) hits[i]++;
        });
        for (size_t i = 0; i < n; ++i) wrong += hits[i].load() != 1;
        std::vector<std::atomic<int>> shares(static_cast<size_t>(nt));
        pool.run([&](int t, int) { shares[static_cast<size_t>(t)]++; });
        for (auto& c : shares) wrong += c.load() != 1;
      }
      finished = true;
    });
    CHECK(wait_for([&] { return finished.load(); }, std::chrono::milliseconds(3000)));
    g_hold = false;
    caller.join();
    CHECK(wait_for([&] { return g_held.load() == 0; }, std::chrono::milliseconds(5000)));
    CHECK(wrong.load() == 0);
  }
  sigaction(SIGUSR1, &old, nullptr);
  // Released workers take part again.
  test_wakeups_after_blocking(pool);
}

// A caller waiting for a worker's long task blocks instead of spinning: its CPU time over the
// region stays far below the region's wall time.
void test_caller_blocks_while_waiting(ThreadPool& pool) {
  const std::thread::id caller = std::this_thread::get_id();
  int measured = 0;
  for (int r = 0; r < 5 && measured < 2; ++r) {
    std::atomic<bool> worker_ran{false};
    const double cpu0 = cpu_seconds(CLOCK_THREAD_CPUTIME_ID);
    const auto t0 = Clock::now();
    pool.run([&](int, int) {
      if (std::this_thread::get_id() == caller) {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
      } else {
        worker_ran = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(150));
      }
    });
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    const double cpu = cpu_seconds(CLOCK_THREAD_CPUTIME_ID) - cpu0;
    if (!worker_ran.load()) continue;
    ++measured;
    CHECK(wall >= 0.1);
    CHECK(cpu < 0.03);
  }
  CHECK(measured > 0);
}

// Idle workers block: the process uses (almost) no CPU between regions.
void test_idle_pool_sleeps(ThreadPool& pool) {
  pool.run([](int, int) {});
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  const double cpu0 = cpu_seconds(CLOCK_PROCESS_CPUTIME_ID);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(cpu_seconds(CLOCK_PROCESS_CPUTIME_ID) - cpu0 < 0.02);
}

void test_default_thread_count() {
  setenv("AXLLM_NUM_THREADS", "3", 1);
  CHECK(axllm::detail::default_thread_count() == 3);
  setenv("AXLLM_NUM_THREADS", "0", 1);
  const int all = axllm::detail::default_thread_count();
  CHECK(all >= 1);
  unsetenv("AXLLM_NUM_THREADS");
  CHECK(axllm::detail::default_thread_count() == all);
  // An affinity mask of one CPU (as `taskset -c N` sets) gives one thread.
  cpu_set_t saved;
  CPU_ZERO(&saved);
  CHECK(sched_getaffinity(0, sizeof(saved), &saved) == 0);
  int first = -1;
  for (int c = 0; c < CPU_SETSIZE && first < 0; ++c) {
    if (CPU_ISSET(c, &saved)) first = c;
  }
  cpu_set_t one;
  CPU_ZERO(&one);
  CPU_SET(first, &one);
  CHECK(sched_setaffinity(0, sizeof(one), &one) == 0);
  CHECK(axllm::detail::default_thread_count() == 1);
  CHECK(sched_setaffinity(0, sizeof(saved), &saved) == 0);
}

}  // namespace

// A worker that stalls in its tasks (here it sleeps 5 ms in each, as one descheduled by another
// process would) makes an adaptive pool run the next regions on the caller alone: over 200
// regions the stalled worker runs only the few tasks it claimed before the pool noticed (and a
// probe after each solo period), and every task still runs exactly once. A kWait pool keeps
// waiting for it.
void test_stalled_workers_make_the_pool_go_solo() {
  const auto caller = std::this_thread::get_id();
  for (auto on_stall : {ThreadPool::OnStall::kAdapt, ThreadPool::OnStall::kWait}) {
    ThreadPool pool(2, on_stall);
    std::atomic<int> by_worker{0}, wrong{0};
    const int regions = on_stall == ThreadPool::OnStall::kAdapt ? 200 : 10;
    for (int r = 0; r < regions; ++r) {
      std::vector<std::atomic<int>> hits(64);
      pool.parallel_for(64, 1, [&](size_t b, size_t e) {
        if (std::this_thread::get_id() != caller) {
          by_worker++;
          std::this_thread::sleep_for(std::chrono::milliseconds(5));
        } else {  // 200 us of work per task, so that the woken worker finds tasks left to claim
          const double end = cpu_seconds(CLOCK_THREAD_CPUTIME_ID) + 200e-6;
          while (cpu_seconds(CLOCK_THREAD_CPUTIME_ID) < end) {
          }
        }
        for (size_t i = b; i < e; ++i) hits[i]++;
      });
      for (auto& h : hits) wrong += h.load() != 1;
    }
    CHECK(wrong.load() == 0);
    if (on_stall == ThreadPool::OnStall::kAdapt) {
      CHECK(pool.solo_regions() >= 190);  // three stalls, then solo for the rest
      CHECK(by_worker.load() <= 10);
    } else {
      CHECK(pool.solo_regions() == 0);
    }
  }
}

int main() {
  test_stalled_workers_make_the_pool_go_solo();
  for (int threads : {1, 2, 3, 4}) {
    // The mechanics below need every share of a region to run concurrently (some wait for all to
    // start), so the pool must not go solo on a busy machine.
    ThreadPool pool(threads, ThreadPool::OnStall::kWait);
    CHECK(pool.size() == threads);
    test_coverage(pool);
    test_every_share_once(pool);
    test_callers_serialized(pool);
    test_wakeups_after_blocking(pool);
    test_idle_pool_sleeps(pool);
    if (threads > 1) {
      test_held_workers_do_not_hold_regions(pool);
      test_caller_blocks_while_waiting(pool);
    }
  }
  CHECK(ThreadPool(0).size() == 1);
  test_default_thread_count();
  return axllm_test::finish("test_thread_pool");
}
