// file-map-check.cpp: the SIGBUS guard of native/file_map.cpp. A read past the end of a file truncated under a
// registered mapping gives zeros and marks the mapping faulted; in-place rewrites are seen, renames are not; any other
// SIGBUS still reaches the handler installed before the guard, or kills the process as it did without it. Each case
// that touches the process's signal disposition runs in a forked child. Built and run by scripts/sanitize.mjs.
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "file_map.h"

namespace {

int failures = 0;

void check(bool ok, const std::string& what) {
  if (!ok) {
    std::fprintf(stderr, "FAIL %s\n", what.c_str());
    failures++;
  }
}

std::string g_dir;
const size_t kPage = static_cast<size_t>(sysconf(_SC_PAGESIZE));

std::string write_file(const std::string& name, size_t bytes, uint8_t fill) {
  const std::string path = g_dir + "/" + name;
  const int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::vector<uint8_t> data(bytes, fill);
  const bool ok = fd >= 0 && write(fd, data.data(), data.size()) == static_cast<ssize_t>(data.size());
  if (fd >= 0) close(fd);
  if (!ok) {
    std::fprintf(stderr, "FAIL cannot write %s\n", path.c_str());
    std::exit(1);
  }
  return path;
}

uint8_t read_at(const void* base, size_t offset) { return static_cast<const volatile uint8_t*>(base)[offset]; }

// A read past the end of a truncated file mapped without the guard: the SIGBUS is not ours.
void foreign_fault() {
  const std::string path = write_file("foreign", 3 * kPage, 0x11);
  const int fd = open(path.c_str(), O_RDONLY);
  void* p = mmap(nullptr, 3 * kPage, PROT_READ, MAP_PRIVATE, fd, 0);
  if (truncate(path.c_str(), 0) != 0 || p == MAP_FAILED) _exit(3);
  read_at(p, 2 * kPage);
  _exit(0);  // not reached: the read faults
}

// Runs `body` in a child with SIGBUS at `previous` (set before the child's first mapping installs the guard) and
// returns its wait status. No core files: a child killed by SIGBUS is an expected outcome here.
template <typename Body>
int in_child(void (*previous)(int), Body body) {
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid == 0) {
    struct rlimit no_core{0, 0};
    setrlimit(RLIMIT_CORE, &no_core);
    alarm(20);  // a handler that returns to a fault it did not fix would spin on it forever
    struct sigaction action{};
    action.sa_handler = previous;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, nullptr);
    body();
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

bool killed_by_sigbus(int status) { return WIFSIGNALED(status) && WTERMSIG(status) == SIGBUS; }
bool exited(int status, int code) { return WIFEXITED(status) && WEXITSTATUS(status) == code; }

// Opens a guarded mapping so the guard is installed (and takes the current SIGBUS action as its previous one).
std::unique_ptr<halo::FileMap> guarded(const std::string& name) {
  auto map = std::make_unique<halo::FileMap>();
  if (halo::file_map_open(write_file(name, kPage, 0x22), *map) != HALO_OK) _exit(4);
  return map;
}

void previous_siginfo_handler(int, siginfo_t*, void*) { _exit(42); }

void check_guarded_mapping() {
  const std::string path = write_file("model", 3 * kPage + 100, 0xab);
  halo::FileMap map;
  check(halo::file_map_open(path, map) == HALO_OK, "file_map_open");
  halo::FileChange change;
  check(read_at(map.data, 2 * kPage + 50) == 0xab && !halo::file_map_changed(map, &change), "an untouched mapping reads the file and is unchanged");
  check(truncate(path.c_str(), static_cast<off_t>(kPage)) == 0, "truncate");
  // Past the new end: without the guard this read is a SIGBUS that kills the process.
  check(read_at(map.data, 2 * kPage + 50) == 0, "a read past the new end gives zero");
  check(read_at(map.data, 3 * kPage + 99) == 0, "the last byte gives zero");
  check(read_at(map.data, 0) == 0, "the whole mapping is zero-filled after a fault");
  check(halo::file_map_changed(map, &change), "a faulted mapping is changed");
  check(change.faulted && !change.stat_failed && change.path == path, "the change says it faulted");
  check(change.before.size == static_cast<int64_t>(3 * kPage + 100) && change.after.size == static_cast<int64_t>(kPage), "the change has both sizes");
}

void check_shrink_without_fault() {
  const std::string path = write_file("shrunk", 2 * kPage, 0xcd);
  halo::FileMap map;
  check(halo::file_map_open(path, map) == HALO_OK, "file_map_open (shrunk)");
  check(truncate(path.c_str(), static_cast<off_t>(kPage)) == 0, "truncate (shrunk)");
  halo::FileChange change;
  check(halo::file_map_changed(map, &change) && !change.faulted && change.after.size == static_cast<int64_t>(kPage),
        "a shrink is seen by fstat before any fault");
}

void check_rewrite_in_place() {
  const std::string path = write_file("rewritten", 2 * kPage, 0x01);
  halo::FileMap map;
  check(halo::file_map_open(path, map) == HALO_OK, "file_map_open (rewritten)");
  // What cp onto the file does: same inode, O_TRUNC, the same number of other bytes. The modification time is set
  // one second later explicitly: the kernel's clock for it is coarse, and the check must not depend on timing.
  write_file("rewritten", 2 * kPage, 0x02);
  struct timespec times[2] = {{0, UTIME_OMIT}, map.identity.modified};
  times[1].tv_sec += 1;
  check(utimensat(AT_FDCWD, path.c_str(), times, 0) == 0, "utimensat");
  halo::FileChange change;
  check(halo::file_map_changed(map, &change) && change.before.size == change.after.size && change.after.modified.tv_sec == map.identity.modified.tv_sec + 1,
        "a same-size rewrite is seen by its modification time");
}

void check_rename_over() {
  const std::string path = write_file("renamed", 2 * kPage, 0x05);
  halo::FileMap map;
  check(halo::file_map_open(path, map) == HALO_OK, "file_map_open (renamed)");
  const std::string replacement = write_file("replacement", kPage, 0x06);
  check(rename(replacement.c_str(), path.c_str()) == 0, "rename");
  halo::FileChange change;
  check(!halo::file_map_changed(map, &change), "a file replaced by rename is not a change for its mapping (the old inode's status-change time moved)");
  check(read_at(map.data, kPage + 7) == 0x05, "the mapping still reads the old bytes");
}

// Returns false when the case cannot run here (it printed a SKIP line).
bool check_capacity() {
  // One descriptor per mapping: make room for more mappings than the guard holds.
  struct rlimit files{};
  getrlimit(RLIMIT_NOFILE, &files);
  const rlim_t want = static_cast<rlim_t>(halo::file_guard_capacity()) + 64;
  if (files.rlim_max != RLIM_INFINITY && files.rlim_max < want) {
    // A `SKIP <what>: <reason>` line: sanitize lists it and test:ci fails on it (any Linux default hard limit, 4096 or more, is enough).
    std::printf("SKIP file-map-check capacity: the RLIMIT_NOFILE hard limit %llu is below the %llu descriptors it needs (raise `ulimit -Hn`)\n",
                static_cast<unsigned long long>(files.rlim_max), static_cast<unsigned long long>(want));
    std::fflush(stdout);  // this runs in a child that leaves by _exit, which would drop a buffered line
    return false;
  }
  files.rlim_cur = want;
  setrlimit(RLIMIT_NOFILE, &files);
  const std::string path = write_file("small", 64, 0x07);
  std::vector<std::unique_ptr<halo::FileMap>> maps;
  for (int i = 0; i < halo::file_guard_capacity(); i++) {
    maps.push_back(std::make_unique<halo::FileMap>());
    if (halo::file_map_open(path, *maps.back()) != HALO_OK) {
      check(false, "the guard holds file_guard_capacity() mappings");
      return true;
    }
  }
  halo::FileMap extra;
  check(halo::file_map_open(path, extra) == HALO_OUT_OF_MEMORY && extra.data == nullptr, "one mapping past capacity is refused, not left unguarded");
  maps.erase(maps.begin() + 17);
  check(halo::file_map_open(path, extra) == HALO_OK, "a released slot is taken again");
  return true;
}

}  // namespace

int main() {
  char dir[] = "/tmp/halo-file-map-XXXXXX";
  if (mkdtemp(dir) == nullptr) return 1;
  g_dir = dir;

  // Children first: each installs the guard over the SIGBUS action it set, as a process would.
  check(killed_by_sigbus(in_child(SIG_DFL,
                                  [] {
                                    auto map = guarded("g1");
                                    foreign_fault();
                                  })),
        "a fault outside our mappings still kills the process with SIGBUS (default action)");
  check(killed_by_sigbus(in_child(SIG_DFL,
                                  [] {
                                    auto map = guarded("g2");
                                    kill(getpid(), SIGBUS);
                                  })),
        "a SIGBUS sent with kill still kills the process");
  check(exited(in_child(SIG_IGN,
                        [] {
                          auto map = guarded("g3");
                          kill(getpid(), SIGBUS);
                        }),
               0),
        "a sent SIGBUS that was ignored before the guard is still ignored");
  check(killed_by_sigbus(in_child(SIG_IGN,
                                  [] {
                                    auto map = guarded("g4");
                                    foreign_fault();
                                  })),
        "a foreign fault kills the process even when SIGBUS was ignored (as the kernel does)");
  const int chained = in_child(SIG_DFL, [] {
    struct sigaction action{};
    action.sa_sigaction = previous_siginfo_handler;
    action.sa_flags = SA_SIGINFO;
    sigemptyset(&action.sa_mask);
    sigaction(SIGBUS, &action, nullptr);
    auto map = guarded("g5");
    // Our own mapping still recovers with a previous handler in place.
    const std::string path = write_file("g5b", 2 * kPage, 0x33);
    halo::FileMap ours;
    if (halo::file_map_open(path, ours) != HALO_OK || truncate(path.c_str(), 0) != 0 || read_at(ours.data, kPage) != 0) _exit(5);
    foreign_fault();
  });
  check(exited(chained, 42), "a foreign fault reaches the SA_SIGINFO handler installed before the guard");
  const int capacity = in_child(SIG_DFL, [] {
    const int before = failures;  // the parent's count, inherited
    const bool ran = check_capacity();
    _exit(failures != before ? 6 : ran ? 0 : 77);
  });
  const bool capacity_skipped = exited(capacity, 77);
  check(exited(capacity, 0) || capacity_skipped, "capacity (see FAIL lines above)");

  check_guarded_mapping();
  check_shrink_without_fault();
  check_rewrite_in_place();
  check_rename_over();

  std::string cleanup = std::string("rm -rf ") + dir;
  if (std::system(cleanup.c_str()) != 0) std::fprintf(stderr, "file-map-check: could not remove %s\n", dir);
  if (failures > 0) {
    std::fprintf(stderr, "file-map-check: %d failures\n", failures);
    return 1;
  }
  std::printf("file-map-check: ok (guarded faults, shrink, rewrite, rename, %s, chaining to the previous SIGBUS action)\n",
              capacity_skipped ? "capacity SKIPPED" : "capacity");
  return 0;
}
