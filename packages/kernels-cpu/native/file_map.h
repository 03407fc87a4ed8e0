// file_map.h: model files mapped read-only, guarded against the file changing under the mapping.
//
// A file shrunk under a mapping (truncate, a partial copy over it) makes the next read of a page past its new end a
// SIGBUS, which kills the process; a file rewritten in place (cp onto it: same inode, O_TRUNC then write) silently
// changes the weights. So every mapping is registered with a process-wide SIGBUS handler that, for a fault inside a
// registered mapping, maps anonymous zero pages over the whole mapping and marks it faulted: the faulting load
// re-executes and reads zeros, the step finishes on garbage, and the model (which checks its mappings before and
// after every step) discards it and refuses every later step with HALO_FILE_CHANGED. Any other SIGBUS goes to the
// handler that was installed before ours, or gets the default action (the process dies as it would have).
//
// A file replaced by rename (mv new.halo model.halo) is not a change: the mapping and the descriptor hold the old
// inode, whose bytes stay as they were.
#ifndef HALO_FILE_MAP_H
#define HALO_FILE_MAP_H

#include <sys/types.h>
#include <time.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "halo_cpu.h"

namespace halo {

/** What identifies a file's contents for a running model: device, inode, size and modification time. */
struct FileIdentity {
  uint64_t device = 0;
  uint64_t inode = 0;
  int64_t size = 0;
  struct timespec modified{};
};

/** How a mapped file was found changed: its identity when mapped and now, whether a read faulted past its end. */
struct FileChange {
  bool changed = false;
  std::string path;
  FileIdentity before, after;
  bool faulted = false;      // a read of the mapping raised SIGBUS (the file shrank under it); the handler zero-filled it
  bool stat_failed = false;  // fstat on the kept descriptor failed (after is then unset)
};

/** A whole file mapped read-only; its descriptor stays open and its mapping registered with the SIGBUS guard. */
struct FileMap {
  std::string path;
  void* data = nullptr;
  size_t bytes = 0;
  int fd = -1;
  int guard_slot = -1;       // index in the guard's table; -1 when not registered
  FileIdentity identity;     // at map time
  FileMap() = default;
  FileMap(const FileMap&) = delete;
  FileMap& operator=(const FileMap&) = delete;
  ~FileMap();
};

/**
 * Maps `path` read-only (pages populated) into `out` and registers it with the SIGBUS guard (installed on first use).
 * HALO_BAD_ARGUMENT when the file cannot be opened or is empty; HALO_OUT_OF_MEMORY when mmap fails, or when the guard
 * cannot take one more mapping (file_guard_capacity() live mappings in the process) or be installed.
 */
halo_status file_map_open(const std::string& path, FileMap& out);

/**
 * Whether the mapped file changed since it was mapped: a read of it faulted, fstat fails, or its device, inode, size
 * or modification time differ. Fills `change` when it did. The status-change time is not compared: unlinking or
 * renaming a file (what replacing it by rename does to the old inode) updates it without touching the bytes.
 */
bool file_map_changed(const FileMap& map, FileChange* change);

/** How many mappings the guard can hold at once. */
int file_guard_capacity();

}  // namespace halo

#endif
