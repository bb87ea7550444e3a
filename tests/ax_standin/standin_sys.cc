// Stand-in libax_sys.so: "CMM" is aligned host memory with made-up physical addresses.
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>

#include "ax_engine_abi.h"
#include "ledger.h"

namespace {
// Recursive: the axllm backend's SIGTERM handler may free blocks on a thread interrupted here.
std::recursive_mutex g_mutex;
std::map<AX_U64, std::pair<void*, AX_U32>> g_blocks;
AX_U64 g_next_phy = 0x100000000ull;

std::string hex(AX_U64 v) {
  char b[32];
  std::snprintf(b, sizeof b, "0x%llx", static_cast<unsigned long long>(v));
  return b;
}
}  // namespace

extern "C" {

__attribute__((visibility("default"))) AX_S32 AX_SYS_Init(AX_VOID) {
  standin::record("AX_SYS_Init");
  return standin::injected_failure("AX_SYS_Init");
}

__attribute__((visibility("default"))) AX_S32 AX_SYS_Deinit(AX_VOID) {
  standin::record("AX_SYS_Deinit");
  return 0;
}

__attribute__((visibility("default"))) AX_S32 AX_SYS_MemAllocCached(AX_U64* phy, AX_VOID** vir,
                                                                    AX_U32 size, AX_U32 align,
                                                                    const AX_S8* token) {
  if (int e = standin::injected_failure("AX_SYS_MemAllocCached")) return e;
  if (!phy || !vir || size == 0 || align == 0) return static_cast<AX_S32>(0x800B000Au);
  void* p = std::aligned_alloc(align, (size + align - 1) / align * align);
  if (!p) return static_cast<AX_S32>(0x800B0018u);
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  *phy = g_next_phy;
  g_next_phy += (size + 0xfff) & ~0xfffull;
  *vir = p;
  g_blocks[*phy] = {p, size};
  standin::record("alloc " + hex(*phy) + " " + std::to_string(size) + " " +
                  std::string(token ? reinterpret_cast<const char*>(token) : ""));
  return 0;
}

__attribute__((visibility("default"))) AX_S32 AX_SYS_MemFree(AX_U64 phy, AX_VOID* vir) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  const auto it = g_blocks.find(phy);
  if (it == g_blocks.end() || it->second.first != vir) {
    standin::record("free-invalid " + hex(phy));
    return static_cast<AX_S32>(0x800B000Au);
  }
  std::free(it->second.first);
  g_blocks.erase(it);
  standin::record("free " + hex(phy));
  return 0;
}

static AX_S32 cache_op(const char* op, AX_U64 phy, AX_VOID* vir, AX_U32 size) {
  std::lock_guard<std::recursive_mutex> lock(g_mutex);
  auto it = g_blocks.upper_bound(phy);
  if (it == g_blocks.begin()) return static_cast<AX_S32>(0x800B000Au);
  --it;
  const AX_U64 off = phy - it->first;
  if (off + size > it->second.second ||
      static_cast<char*>(it->second.first) + off != static_cast<char*>(vir)) {
    standin::record(std::string(op) + "-invalid " + hex(phy));
    return static_cast<AX_S32>(0x800B000Au);
  }
  standin::record(std::string(op) + " " + hex(phy) + " " + std::to_string(size));
  return 0;
}

__attribute__((visibility("default"))) AX_S32 AX_SYS_MflushCache(AX_U64 phy, AX_VOID* vir,
                                                                 AX_U32 size) {
  return cache_op("flush", phy, vir, size);
}

__attribute__((visibility("default"))) AX_S32 AX_SYS_MinvalidateCache(AX_U64 phy, AX_VOID* vir,
                                                                      AX_U32 size) {
  return cache_op("invalidate", phy, vir, size);
}

}  // extern "C"
