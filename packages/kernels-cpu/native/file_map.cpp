// file_map.cpp: read-only file mappings and the SIGBUS guard that keeps a file shrinking under one from killing us.
#include "file_map.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <mutex>

namespace halo {

namespace {

// The table the handler reads: fixed size, atomics only (no allocation or lock in a signal handler). A slot's tag is
// generation << 2 | state; the handler reads the tag, the range, then the tag again, and skips the slot if it moved,
// so a slot being released or reused mid-read is never taken for a live mapping.
constexpr int kGuardSlots = 1024;
constexpr uint64_t kFree = 0, kClaimed = 1, kLive = 2;

struct GuardSlot {
  std::atomic<uint64_t> tag{0};
  std::atomic<uintptr_t> begin{0}, end{0};  // page-aligned [begin, end) of the mapping
  std::atomic<int> faulted{0};
};
static_assert(std::atomic<uint64_t>::is_always_lock_free && std::atomic<uintptr_t>::is_always_lock_free && std::atomic<int>::is_always_lock_free,
              "the SIGBUS handler needs lock-free atomics");

GuardSlot g_slots[kGuardSlots];
std::atomic<int> g_used{0};  // slots [0, g_used) have been claimed at least once: what the handler scans
struct sigaction g_previous;  // the SIGBUS action before ours; written once, before ours is installed

// Whatever handled SIGBUS before us gets the signal, or the default action happens (the process dies of SIGBUS).
void chain(int sig, siginfo_t* info, void* context) {
  if ((g_previous.sa_flags & SA_SIGINFO) != 0 && g_previous.sa_sigaction != nullptr) {
    g_previous.sa_sigaction(sig, info, context);
    return;
  }
  if ((g_previous.sa_flags & SA_SIGINFO) == 0 && g_previous.sa_handler != SIG_DFL && g_previous.sa_handler != SIG_IGN) {
    g_previous.sa_handler(sig);
    return;
  }
  const bool fault = info != nullptr && info->si_code > 0;  // raised by the CPU, not sent with kill / tgkill / sigqueue
  if (!fault && g_previous.sa_handler == SIG_IGN) return;   // a sent SIGBUS was ignored before us: still is
  struct sigaction fallback{};
  fallback.sa_handler = SIG_DFL;
  sigemptyset(&fallback.sa_mask);
  sigaction(sig, &fallback, nullptr);
  // A fault re-executes the load on return and faults again, now into the default action: the process dies at the
  // faulting instruction, as it would have without us (core dump included). A sent signal is sent again; it stays
  // pending while this handler runs and kills the process as it returns.
  if (!fault) raise(sig);
}

void on_sigbus(int sig, siginfo_t* info, void* context) {
  const int saved_errno = errno;
  if (info != nullptr && info->si_code > 0) {
    const uintptr_t at = reinterpret_cast<uintptr_t>(info->si_addr);
    const int used = g_used.load(std::memory_order_acquire);
    for (int i = 0; i < used; i++) {
      GuardSlot& slot = g_slots[i];
      const uint64_t tag = slot.tag.load(std::memory_order_acquire);
      if ((tag & 3) != kLive) continue;
      const uintptr_t begin = slot.begin.load(std::memory_order_acquire), end = slot.end.load(std::memory_order_acquire);
      if (slot.tag.load(std::memory_order_acquire) != tag || at < begin || at >= end) continue;
      // Zero pages over the whole mapping, not just from the faulting page: the model is done with this file either
      // way, and one signal per mapping beats one per page read below the first fault. The raw syscall, not libc's
      // mmap, so no interposed wrapper (a sanitizer's) runs inside the handler.
      const long mapped = syscall(SYS_mmap, begin, end - begin, PROT_READ, MAP_FIXED | MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (static_cast<uintptr_t>(mapped) != begin) break;  // could not replace it: nothing to return to but the fault
      slot.faulted.store(1, std::memory_order_release);
      errno = saved_errno;
      return;
    }
  }
  errno = saved_errno;
  chain(sig, info, context);
}

std::mutex g_install_mutex;
bool g_installed = false;

bool install_guard() {
  std::lock_guard<std::mutex> lock(g_install_mutex);
  if (g_installed) return true;
  struct sigaction action{};
  action.sa_sigaction = on_sigbus;
  action.sa_flags = SA_SIGINFO | SA_ONSTACK;
  sigemptyset(&action.sa_mask);
  if (sigaction(SIGBUS, nullptr, &g_previous) != 0) return false;
  if (sigaction(SIGBUS, &action, nullptr) != 0) return false;
  g_installed = true;
  return true;
}

// A slot for [begin, end), live when this returns; -1 when the table is full.
int guard_register(uintptr_t begin, uintptr_t end) {
  for (int i = 0; i < kGuardSlots; i++) {
    GuardSlot& slot = g_slots[i];
    uint64_t tag = slot.tag.load(std::memory_order_acquire);
    if ((tag & 3) != kFree) continue;
    const uint64_t generation = (tag >> 2) + 1;
    if (!slot.tag.compare_exchange_strong(tag, generation << 2 | kClaimed, std::memory_order_acq_rel)) continue;
    slot.begin.store(begin, std::memory_order_release);
    slot.end.store(end, std::memory_order_release);
    slot.faulted.store(0, std::memory_order_release);
    for (int used = g_used.load(); used < i + 1 && !g_used.compare_exchange_weak(used, i + 1);) {}
    slot.tag.store(generation << 2 | kLive, std::memory_order_release);
    return i;
  }
  return -1;
}

void guard_release(int i) {
  GuardSlot& slot = g_slots[i];
  slot.tag.store((slot.tag.load(std::memory_order_acquire) >> 2) << 2 | kFree, std::memory_order_release);
}

FileIdentity identity_of(const struct stat& st) {
  FileIdentity id;
  id.device = static_cast<uint64_t>(st.st_dev);
  id.inode = static_cast<uint64_t>(st.st_ino);
  id.size = static_cast<int64_t>(st.st_size);
  id.modified = st.st_mtim;
  return id;
}

bool same(const FileIdentity& a, const FileIdentity& b) {
  return a.device == b.device && a.inode == b.inode && a.size == b.size && a.modified.tv_sec == b.modified.tv_sec && a.modified.tv_nsec == b.modified.tv_nsec;
}

}  // namespace

int file_guard_capacity() { return kGuardSlots; }

FileMap::~FileMap() {
  // Unregistered before it is unmapped: the handler must never claim an address range that is about to be reused.
  if (guard_slot >= 0) guard_release(guard_slot);
  if (data != nullptr) munmap(data, bytes);
  if (fd >= 0) close(fd);
}

halo_status file_map_open(const std::string& path, FileMap& out) {
  if (!install_guard()) return HALO_OUT_OF_MEMORY;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return HALO_BAD_ARGUMENT;
  struct stat st{};
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    close(fd);
    return HALO_BAD_ARGUMENT;
  }
  const size_t bytes = static_cast<size_t>(st.st_size);
  int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
  flags |= MAP_POPULATE;  // page tables filled now (from the page cache when warm), not on the first token
#endif
  void* p = mmap(nullptr, bytes, PROT_READ, flags, fd, 0);
  if (p == MAP_FAILED) {
    close(fd);
    return HALO_OUT_OF_MEMORY;
  }
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t begin = reinterpret_cast<uintptr_t>(p);
  const int slot = guard_register(begin, begin + (bytes + page - 1) / page * page);
  if (slot < 0) {
    munmap(p, bytes);
    close(fd);
    return HALO_OUT_OF_MEMORY;
  }
  out.path = path;
  out.data = p;
  out.bytes = bytes;
  out.fd = fd;
  out.guard_slot = slot;
  out.identity = identity_of(st);
  return HALO_OK;
}

bool file_map_changed(const FileMap& map, FileChange* change) {
  const bool faulted = map.guard_slot >= 0 && g_slots[map.guard_slot].faulted.load(std::memory_order_acquire) != 0;
  struct stat st{};
  const bool stat_failed = fstat(map.fd, &st) != 0;
  const FileIdentity now = stat_failed ? FileIdentity{} : identity_of(st);
  if (!faulted && !stat_failed && same(map.identity, now)) return false;
  change->changed = true;
  change->path = map.path;
  change->before = map.identity;
  change->after = now;
  change->faulted = faulted;
  change->stat_failed = stat_failed;
  return true;
}

}  // namespace halo
