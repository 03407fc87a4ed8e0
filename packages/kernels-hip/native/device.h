// device.h: one GPU as the model sees it — memory, copies, kernel launches and optional graph replay — behind which
// sit the HIP runtime (libamdhip64, dlopen'ed), the CUDA driver (libcuda, dlopen'ed) or the CPU emulator.
#ifndef HALO_GPU_DEVICE_H
#define HALO_GPU_DEVICE_H

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace halo_gpu {

/** Why a device call failed; `message` names the runtime call and its error name (`hipMalloc: hipErrorOutOfMemory`). */
enum class Status : int {
  Ok = 0,
  NoRuntime = 1,       // the runtime library is not installed or lacks a symbol
  NoDevice = 2,        // the runtime loads but reports no GPU
  NoCodeForArch = 3,   // no code object of this package loads on the GPU
  OutOfMemory = 4,
  DeviceError = 5,     // any other runtime failure (launch, copy, sync), including injected emulator faults
  BadArgument = 6,
};

struct Result {
  Status status = Status::Ok;
  std::string message;
  bool ok() const { return status == Status::Ok; }
  static Result success() { return {}; }
  static Result failure(Status status, std::string message) { return {status, std::move(message)}; }
};

struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

/** Which runtime a device comes from (`HALO_HIP_DEVICE` / the backend's `device` option picks). */
enum class Kind { Hip, Cuda, Emulator };
const char* kind_name(Kind kind);

/** A device address (a host address under the emulator). */
using DevicePtr = void*;

/** A kernel of the loaded module, by name. */
using KernelHandle = const void*;

/** Where the prebuilt code objects are: one file per target, `<dir>/halo_kernels.<target>.{hsaco,cubin,ptx}`. */
struct CodeObjects {
  std::string directory;
};

/** What a probe or an opened device reports. */
struct DeviceInfo {
  Kind kind = Kind::Emulator;
  std::string name;               // "AMD Radeon 8060S Graphics", "NVIDIA H100 80GB HBM3", "halo emulator (CPU)"
  std::string arch;               // the target whose code object loaded: "gfx1151", "sm_90", "emulator"
  std::size_t total_bytes = 0;
  std::size_t free_bytes = 0;
  std::vector<std::string> targets;  // targets this package has code objects for (in the directory)
};

class Device {
 public:
  virtual ~Device() = default;
  virtual const DeviceInfo& info() const = 0;
  /** Refreshes free / total bytes. */
  virtual Result memory(std::size_t* free_bytes, std::size_t* total_bytes) = 0;
  virtual Result alloc(std::size_t bytes, DevicePtr* out) = 0;
  virtual void release(DevicePtr ptr) = 0;
  /** Host → device, ordered after earlier launches on the device's one stream. */
  virtual Result upload(DevicePtr dst, const void* src, std::size_t bytes) = 0;
  /** Device → host; waits for earlier work. */
  virtual Result download(void* dst, const void* src, std::size_t bytes) = 0;
  virtual Result copy(DevicePtr dst, const void* src, std::size_t bytes) = 0;
  virtual Result fill(DevicePtr dst, int byte, std::size_t bytes) = 0;
  /** The kernel `name` (an `extern "C"` entry of halo_kernels). */
  virtual Result kernel(const char* name, KernelHandle* out) = 0;
  /** Launches `kernel` with its argument block (`args_bytes` bytes, one struct of halo_kernel_args.h). */
  virtual Result launch(KernelHandle kernel, Dim3 grid, Dim3 block, const void* args, std::size_t args_bytes) = 0;
  virtual Result synchronize() = 0;

  // Graph replay: launches between begin_capture and end_capture are recorded, not run; replay(id) runs them again
  // with the same argument blocks (every per-step value lives in device buffers, so one graph serves every step of
  // the same shape). Devices without graphs record nothing and return Status::BadArgument from begin_capture.
  virtual bool graphs() const { return false; }
  virtual Result begin_capture() { return Result::failure(Status::BadArgument, "graphs are not supported on this device"); }
  virtual Result end_capture(int* graph_id) {
    (void)graph_id;
    return Result::failure(Status::BadArgument, "graphs are not supported on this device");
  }
  virtual Result replay(int graph_id) {
    (void)graph_id;
    return Result::failure(Status::BadArgument, "graphs are not supported on this device");
  }
  virtual void drop_graphs() {}

  /** Launches since the device was opened (graph replays count their kernels), for launches-per-token reports. */
  std::uint64_t launches = 0;
};

/**
 * Opens a device. `which`: "auto" (HIP, then CUDA), "hip", "cuda" or "emulator". On failure `out` stays empty and the
 * result says exactly why: which library was not found, that no GPU is present, the device's architecture and the list
 * of targets this package has code for, or the runtime error.
 */
Result open_device(const std::string& which, const CodeObjects& code, std::unique_ptr<Device>* out);

/** Probe without keeping the device: info (name, arch, memory, targets) or the reason it cannot run. */
Result probe_device(const std::string& which, const CodeObjects& code, DeviceInfo* info);

/** Emulator fault injection (tests): the `after`-th next call of `op` ("alloc", "upload", "download", "launch",
 *  "sync") fails with Status::DeviceError (or OutOfMemory for "alloc"); `after` < 0 clears every fault. */
Result emulator_inject_fault(const std::string& op, int after);

}  // namespace halo_gpu

#endif
