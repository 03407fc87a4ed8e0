// device_emu.cpp: the emulated device — capped, tracked host memory, launches through kernels/emu, graphs recorded
// and replayed in order, and the fault table of emulator_inject_fault.
#include "device_emu.h"

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <map>
#include <mutex>
#include <new>

#include "emu/emu.h"

namespace halo_gpu {

namespace {

constexpr std::size_t kAlignment = 256;
constexpr std::size_t kDefaultCap = std::size_t{8} << 30;

// ---------------------------------------------------------------------------------------------------------------
// Fault injection: per operation, how many more calls succeed before one fails (−1: none armed). Process-wide, as
// tests arm it through the binding without a device handle.
enum FaultOp { kFaultAlloc, kFaultUpload, kFaultDownload, kFaultLaunch, kFaultSync, kFaultOps };
const char* const kFaultNames[kFaultOps] = {"alloc", "upload", "download", "launch", "sync"};

std::mutex g_fault_mutex;
int g_fault_after[kFaultOps] = {-1, -1, -1, -1, -1};

/** Whether this call of `op` is the one armed to fail (disarming it). */
bool fault_due(FaultOp op) {
  std::lock_guard<std::mutex> lock(g_fault_mutex);
  if (g_fault_after[op] < 0) return false;
  if (g_fault_after[op]-- == 0) return true;
  return false;
}

Result injected(FaultOp op) {
  return Result::failure(op == kFaultAlloc ? Status::OutOfMemory : Status::DeviceError,
                         std::string(kFaultNames[op]) + ": injected emulator fault (emulator_inject_fault)");
}

std::string hex(const void* p) {
  char text[32];
  std::snprintf(text, sizeof text, "%p", p);
  return text;
}

/** One recorded launch of a graph: the kernel, its shape and its own copy of the argument block. */
struct Recorded {
  const halo_emu::KernelInfo* kernel;
  halo_emu::Dim3 grid, block;
  std::vector<std::max_align_t> args;  // args_bytes rounded up, max_align_t-aligned like any argument struct
};

class EmulatorDevice final : public Device {
 public:
  EmulatorDevice(DeviceInfo info, std::size_t cap) : info_(std::move(info)), cap_(cap) {}

  ~EmulatorDevice() override {
    for (auto& entry : allocations_) std::free(reinterpret_cast<void*>(entry.first));
  }

  const DeviceInfo& info() const override { return info_; }

  Result memory(std::size_t* free_bytes, std::size_t* total_bytes) override {
    if (free_bytes != nullptr) *free_bytes = cap_ - used_;
    if (total_bytes != nullptr) *total_bytes = cap_;
    info_.free_bytes = cap_ - used_;
    return Result::success();
  }

  Result alloc(std::size_t bytes, DevicePtr* out) override {
    if (out == nullptr) return Result::failure(Status::BadArgument, "alloc: null output pointer");
    *out = nullptr;
    if (bytes == 0) return Result::failure(Status::BadArgument, "alloc: 0 bytes (CUDA refuses empty allocations); skip the buffer instead");
    if (fault_due(kFaultAlloc)) return injected(kFaultAlloc);
    if (bytes > cap_) return out_of_memory(bytes);
    const std::size_t rounded = (bytes + kAlignment - 1) / kAlignment * kAlignment;
    if (rounded > cap_ - used_) return out_of_memory(bytes);
    void* memory = std::aligned_alloc(kAlignment, rounded);
    if (memory == nullptr) return Result::failure(Status::OutOfMemory, "alloc: the host has no " + std::to_string(rounded) + " bytes for the emulated device");
    // GPU memory starts as garbage: 0xff bytes (NaN floats, −1 integers) make a read of never-written memory show.
    std::memset(memory, 0xff, rounded);
    allocations_[reinterpret_cast<std::uintptr_t>(memory)] = {bytes, rounded};
    used_ += rounded;
    *out = memory;
    return Result::success();
  }

  void release(DevicePtr ptr) override {
    if (ptr == nullptr) return;
    auto found = allocations_.find(reinterpret_cast<std::uintptr_t>(ptr));
    if (found == allocations_.end()) {
      if (pending_.ok()) pending_ = Result::failure(Status::BadArgument, "release: " + hex(ptr) + " is not the start of a live emulator allocation");
      return;
    }
    used_ -= found->second.rounded;
    std::free(ptr);
    allocations_.erase(found);
  }

  Result upload(DevicePtr dst, const void* src, std::size_t bytes) override {
    if (Result refused = refuse_in_capture("upload"); !refused.ok()) return refused;
    if (bytes == 0) return Result::success();
    if (src == nullptr) return Result::failure(Status::BadArgument, "upload: null host source");
    if (Result checked = check_range("upload destination", dst, bytes); !checked.ok()) return checked;
    if (fault_due(kFaultUpload)) return injected(kFaultUpload);
    std::memcpy(dst, src, bytes);
    return Result::success();
  }

  Result download(void* dst, const void* src, std::size_t bytes) override {
    if (Result refused = refuse_in_capture("download"); !refused.ok()) return refused;
    if (bytes == 0) return Result::success();
    if (dst == nullptr) return Result::failure(Status::BadArgument, "download: null host destination");
    if (Result checked = check_range("download source", src, bytes); !checked.ok()) return checked;
    if (fault_due(kFaultDownload)) return injected(kFaultDownload);
    std::memcpy(dst, src, bytes);
    return Result::success();
  }

  Result copy(DevicePtr dst, const void* src, std::size_t bytes) override {
    if (Result refused = refuse_in_capture("copy"); !refused.ok()) return refused;
    if (bytes == 0) return Result::success();
    if (Result checked = check_range("copy destination", dst, bytes); !checked.ok()) return checked;
    if (Result checked = check_range("copy source", src, bytes); !checked.ok()) return checked;
    const auto d = reinterpret_cast<std::uintptr_t>(dst), s = reinterpret_cast<std::uintptr_t>(src);
    if (d < s + bytes && s < d + bytes)
      return Result::failure(Status::BadArgument, "copy: source " + hex(src) + " and destination " + hex(dst) + " overlap over " + std::to_string(bytes) +
                                                      " bytes (device copies of overlapping ranges are undefined on GPUs)");
    std::memcpy(dst, src, bytes);
    return Result::success();
  }

  Result fill(DevicePtr dst, int byte, std::size_t bytes) override {
    if (Result refused = refuse_in_capture("fill"); !refused.ok()) return refused;
    if (bytes == 0) return Result::success();
    if (Result checked = check_range("fill", dst, bytes); !checked.ok()) return checked;
    std::memset(dst, byte, bytes);
    return Result::success();
  }

  Result kernel(const char* name, KernelHandle* out) override {
    if (out == nullptr) return Result::failure(Status::BadArgument, "kernel: null output handle");
    *out = nullptr;
    const halo_emu::KernelInfo* found = halo_emu::find_kernel(name);
    if (found == nullptr)
      return Result::failure(Status::BadArgument, std::string("kernel: no kernel named '") + (name != nullptr ? name : "(null)") +
                                                      "' is compiled into the emulator (check the name against halo_kernels.cpp)");
    *out = found;
    return Result::success();
  }

  Result launch(KernelHandle kernel, Dim3 grid, Dim3 block, const void* args, std::size_t args_bytes) override {
    if (kernel == nullptr || !halo_emu::is_registered(kernel))
      return Result::failure(Status::BadArgument, "launch: " + hex(kernel) + " is not a kernel handle of this device (use kernel(name))");
    const auto* info = static_cast<const halo_emu::KernelInfo*>(kernel);
    if (args_bytes != info->args_bytes)
      return Result::failure(Status::BadArgument, std::string("launch ") + info->name + ": argument block of " + std::to_string(args_bytes) +
                                                      " bytes, the kernel takes " + std::to_string(info->args_bytes));
    if (args == nullptr && args_bytes != 0) return Result::failure(Status::BadArgument, std::string("launch ") + info->name + ": null argument block");
    Recorded recorded{info, {grid.x, grid.y, grid.z}, {block.x, block.y, block.z}, {}};
    std::string error;
    if (!halo_emu::check_launch(*info, recorded.grid, recorded.block, &error)) return Result::failure(Status::BadArgument, "launch: " + error);
    recorded.args.resize((args_bytes + sizeof(std::max_align_t) - 1) / sizeof(std::max_align_t));
    if (args_bytes != 0) std::memcpy(recorded.args.data(), args, args_bytes);
    if (capturing_) {
      capture_.push_back(std::move(recorded));
      return Result::success();
    }
    return execute(recorded);
  }

  Result synchronize() override {
    if (Result refused = refuse_in_capture("synchronize"); !refused.ok()) return refused;
    if (!pending_.ok()) {
      Result pending = std::move(pending_);
      pending_ = Result::success();
      return pending;
    }
    if (fault_due(kFaultSync)) return injected(kFaultSync);
    return Result::success();
  }

  bool graphs() const override { return true; }

  Result begin_capture() override {
    if (capturing_) return Result::failure(Status::BadArgument, "begin_capture: a capture is already in progress (end_capture first)");
    capturing_ = true;
    capture_.clear();
    return Result::success();
  }

  Result end_capture(int* graph_id) override {
    if (!capturing_) return Result::failure(Status::BadArgument, "end_capture: no capture in progress (begin_capture first)");
    capturing_ = false;
    if (graph_id == nullptr) {
      capture_.clear();
      return Result::failure(Status::BadArgument, "end_capture: null graph id output; the capture is dropped");
    }
    graphs_.push_back({true, std::move(capture_)});
    capture_.clear();
    *graph_id = static_cast<int>(graphs_.size() - 1);
    return Result::success();
  }

  Result replay(int graph_id) override {
    if (Result refused = refuse_in_capture("replay"); !refused.ok()) return refused;
    if (graph_id < 0 || static_cast<std::size_t>(graph_id) >= graphs_.size() || !graphs_[static_cast<std::size_t>(graph_id)].live)
      return Result::failure(Status::BadArgument, "replay: no graph " + std::to_string(graph_id) + " (ids come from end_capture; drop_graphs ends them all)");
    const std::vector<Recorded>& graph = graphs_[static_cast<std::size_t>(graph_id)].launches;
    for (std::size_t i = 0; i < graph.size(); i++) {
      Result result = execute(graph[i]);
      if (!result.ok())
        return Result::failure(result.status, "replay of graph " + std::to_string(graph_id) + ", launch " + std::to_string(i) + ": " + result.message);
    }
    return Result::success();
  }

  void drop_graphs() override {
    // Ids stay unique for the device's life: a stale id is refused instead of replaying a newer graph.
    for (Graph& graph : graphs_) {
      graph.live = false;
      graph.launches = {};
    }
  }

 private:
  struct Allocation {
    std::size_t bytes, rounded;  // as asked (what ranges are checked against) and as reserved (what the cap counts)
  };
  struct Graph {
    bool live;
    std::vector<Recorded> launches;
  };

  Result out_of_memory(std::size_t bytes) const {
    return Result::failure(Status::OutOfMemory, "alloc: " + std::to_string(bytes) + " bytes do not fit: " + std::to_string(used_) + " of " +
                                                    std::to_string(cap_) + " bytes in use (the emulator's cap, HALO_HIP_EMULATOR_MEMORY)");
  }

  Result refuse_in_capture(const char* what) const {
    if (!capturing_) return Result::success();
    return Result::failure(Status::BadArgument,
                           std::string(what) + ": not allowed during graph capture (graphs hold kernel launches only; upload a step's inputs before replay)");
  }

  /** [ptr, ptr + bytes) must lie inside one live allocation. */
  Result check_range(const char* what, const void* ptr, std::size_t bytes) const {
    if (ptr == nullptr) return Result::failure(Status::BadArgument, std::string(what) + ": null device pointer");
    const auto start = reinterpret_cast<std::uintptr_t>(ptr);
    auto found = allocations_.upper_bound(start);
    if (found != allocations_.begin()) {
      --found;
      const std::uintptr_t base = found->first, size = found->second.bytes;
      if (start - base < size && bytes <= size - (start - base)) return Result::success();
      if (start - base < size)
        return Result::failure(Status::BadArgument, std::string(what) + ": " + std::to_string(bytes) + " bytes at offset " + std::to_string(start - base) +
                                                        " run past the end of a " + std::to_string(size) + "-byte allocation");
    }
    return Result::failure(Status::BadArgument, std::string(what) + ": " + hex(ptr) + " is not inside a live emulator allocation");
  }

  Result execute(const Recorded& recorded) {
    if (fault_due(kFaultLaunch)) return injected(kFaultLaunch);
    std::string error;
    const bool ran = halo_emu::run(*recorded.kernel, recorded.grid, recorded.block, recorded.args.data(), &error);
    launches++;
    if (!ran) return Result::failure(Status::DeviceError, "launch: " + error);
    return Result::success();
  }

  DeviceInfo info_;
  std::size_t cap_, used_ = 0;
  std::map<std::uintptr_t, Allocation> allocations_;
  Result pending_;  // an error with no status to return it through (release), reported by the next synchronize
  bool capturing_ = false;
  std::vector<Recorded> capture_;
  std::vector<Graph> graphs_;
};

}  // namespace

std::vector<std::string> code_object_targets(const std::string& directory) {
  std::vector<std::string> targets;
  if (directory.empty()) return targets;
  std::error_code code;
  std::filesystem::directory_iterator it(directory, code), end;
  for (; !code && it != end; it.increment(code)) {
    const std::string name = it->path().filename().string();
    static const std::string prefix = "halo_kernels.";
    if (name.compare(0, prefix.size(), prefix) != 0) continue;
    for (const char* suffix : {".hsaco", ".cubin", ".ptx"}) {
      const std::size_t length = std::strlen(suffix);
      if (name.size() > prefix.size() + length && name.compare(name.size() - length, length, suffix) == 0) {
        const std::string target = name.substr(prefix.size(), name.size() - prefix.size() - length);
        if (target.find('.') == std::string::npos) targets.push_back(target);
      }
    }
  }
  std::sort(targets.begin(), targets.end());
  targets.erase(std::unique(targets.begin(), targets.end()), targets.end());
  return targets;
}

Result open_emulator(const CodeObjects& code, std::unique_ptr<Device>* out) {
  if (out == nullptr) return Result::failure(Status::BadArgument, "open_emulator: null output");
  out->reset();
  std::size_t cap = kDefaultCap;
  if (const char* text = std::getenv("HALO_HIP_EMULATOR_MEMORY"); text != nullptr && *text != '\0') {
    char* end = nullptr;
    errno = 0;
    const unsigned long long parsed = std::strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0' || parsed == 0 || text[0] == '-' || parsed > SIZE_MAX)
      return Result::failure(Status::BadArgument, std::string("HALO_HIP_EMULATOR_MEMORY = '") + text +
                                                      "': expected the emulated device's memory in bytes, a positive decimal number (unset it for 8 GiB)");
    cap = static_cast<std::size_t>(parsed);
  }
  DeviceInfo info;
  info.kind = Kind::Emulator;
  info.name = "halo GPU emulator (CPU)";
  info.arch = "emulator";
  info.total_bytes = cap;
  info.free_bytes = cap;
  info.targets = code_object_targets(code.directory);
  out->reset(new (std::nothrow) EmulatorDevice(std::move(info), cap));
  if (*out == nullptr) return Result::failure(Status::OutOfMemory, "open_emulator: no host memory for the device object");
  return Result::success();
}

Result emulator_inject_fault(const std::string& op, int after) {
  std::lock_guard<std::mutex> lock(g_fault_mutex);
  if (after < 0) {
    for (int& armed : g_fault_after) armed = -1;
    return Result::success();
  }
  for (int i = 0; i < kFaultOps; i++) {
    if (op == kFaultNames[i]) {
      g_fault_after[i] = after;
      return Result::success();
    }
  }
  return Result::failure(Status::BadArgument, "emulator_inject_fault: unknown operation '" + op + "' (alloc, upload, download, launch or sync)");
}

}  // namespace halo_gpu
