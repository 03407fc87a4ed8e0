// device_cuda.cpp: the Device on an NVIDIA GPU through the CUDA driver API (libcuda, installed with the driver), loaded
// with dlopen at run time so the addon builds and loads without CUDA. Code: the cubin built for exactly the GPU's
// compute capability (halo_kernels.sm_XY.cubin), else the PTX (halo_kernels.compute_XY.ptx) of the highest capability
// not above the GPU's, compiled by the driver's JIT.
//
// Threads: a CudaDevice is used by one thread at a time (the model serialises its steps); that thread may change between
// calls (the binding's async workers), so every call makes the device's primary context current on the calling thread.
// Ordering: everything goes to one non-blocking stream. upload and download wait for their copy (the host buffer is
// free on return); copy, fill and launch are queued; synchronize waits for all of it.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "device.h"
#include "gpu_runtime_decls.h"

namespace halo_gpu {
namespace detail {
namespace {

constexpr const char* kCudaOverrideEnv = "HALO_CUDA_DRIVER_LIBRARY";

/** The CUDA driver's entry points; one per loaded library, never freed (the library is never unloaded). */
struct CudaApi {
  Library library;
  cuda::InitFn init = nullptr;
  cuda::DriverGetVersionFn driver_get_version = nullptr;
  cuda::DeviceGetCountFn device_get_count = nullptr;
  cuda::DeviceGetFn device_get = nullptr;
  cuda::DeviceGetNameFn device_get_name = nullptr;
  cuda::DeviceGetAttributeFn device_get_attribute = nullptr;
  cuda::DevicePrimaryCtxRetainFn primary_ctx_retain = nullptr;
  cuda::DevicePrimaryCtxReleaseFn primary_ctx_release = nullptr;
  cuda::CtxSetCurrentFn ctx_set_current = nullptr;
  cuda::MemGetInfoFn mem_get_info = nullptr;
  cuda::MemAllocFn mem_alloc = nullptr;
  cuda::MemFreeFn mem_free = nullptr;
  cuda::MemcpyHtoDAsyncFn memcpy_htod_async = nullptr;
  cuda::MemcpyDtoHAsyncFn memcpy_dtoh_async = nullptr;
  cuda::MemcpyDtoDAsyncFn memcpy_dtod_async = nullptr;
  cuda::MemsetD8AsyncFn memset_d8_async = nullptr;
  cuda::ModuleLoadDataExFn module_load_data_ex = nullptr;
  cuda::ModuleUnloadFn module_unload = nullptr;
  cuda::ModuleGetFunctionFn module_get_function = nullptr;
  cuda::LaunchKernelFn launch_kernel = nullptr;
  cuda::StreamCreateFn stream_create = nullptr;
  cuda::StreamDestroyFn stream_destroy = nullptr;
  cuda::StreamSynchronizeFn stream_synchronize = nullptr;
  cuda::GetErrorNameFn get_error_name = nullptr;
  // Graphs (optional: without them the device runs every launch directly).
  cuda::StreamBeginCaptureFn stream_begin_capture = nullptr;
  cuda::StreamEndCaptureFn stream_end_capture = nullptr;
  cuda::GraphInstantiateWithFlagsFn graph_instantiate_with_flags = nullptr;
  cuda::GraphLaunchFn graph_launch = nullptr;
  cuda::GraphExecDestroyFn graph_exec_destroy = nullptr;
  cuda::GraphDestroyFn graph_destroy = nullptr;

  bool has_graphs() const {
    return stream_begin_capture && stream_end_capture && graph_instantiate_with_flags && graph_launch && graph_exec_destroy && graph_destroy;
  }

  std::string error_name(cuda::Result error) const {
    const char* name = nullptr;
    if (get_error_name == nullptr || get_error_name(error, &name) != cuda::kSuccess || name == nullptr) return "CUresult " + std::to_string(error);
    return name;
  }

  /** `call` failed with `error`: "cuMemAlloc(268435456 bytes): CUDA_ERROR_OUT_OF_MEMORY". */
  Result failure(cuda::Result error, const std::string& call) const {
    return Result::failure(error == cuda::kErrorOutOfMemory ? Status::OutOfMemory : Status::DeviceError, call + ": " + error_name(error));
  }
};

template <typename Fn>
void bind_symbol(const Library& library, const char* name, Fn* out, std::string* missing) {
  *out = reinterpret_cast<Fn>(find_symbol(library, name));
  if (*out == nullptr && missing != nullptr) *missing += (missing->empty() ? "" : ", ") + std::string(name);
}

std::mutex api_mutex;

Result load_cuda_api(const CudaApi** out) {
  Library library;
  Result loaded = load_library("CUDA driver (libcuda)", kCudaOverrideEnv, {"libcuda.so.1", "libcuda.so"},
                               "Install the NVIDIA driver (it ships libcuda.so.1) or set HALO_CUDA_DRIVER_LIBRARY to libcuda's path.", &library);
  if (!loaded.ok()) return loaded;
  std::lock_guard<std::mutex> lock(api_mutex);
  static auto* apis = new std::unordered_map<void*, CudaApi*>();  // by library handle; never freed, like the library
  if (auto found = apis->find(library.handle); found != apis->end()) {
    *out = found->second;
    return Result::success();
  }
  auto api = std::make_unique<CudaApi>();
  api->library = library;
  std::string missing;
  // The `_v2` names are the 64-bit-size entry points cuda.h maps the plain names to; the plain ones are the old ABI.
  bind_symbol(library, "cuInit", &api->init, &missing);
  bind_symbol(library, "cuDriverGetVersion", &api->driver_get_version, &missing);
  bind_symbol(library, "cuDeviceGetCount", &api->device_get_count, &missing);
  bind_symbol(library, "cuDeviceGet", &api->device_get, &missing);
  bind_symbol(library, "cuDeviceGetName", &api->device_get_name, &missing);
  bind_symbol(library, "cuDeviceGetAttribute", &api->device_get_attribute, &missing);
  bind_symbol(library, "cuDevicePrimaryCtxRetain", &api->primary_ctx_retain, &missing);
  bind_symbol(library, "cuDevicePrimaryCtxRelease_v2", &api->primary_ctx_release, nullptr);
  if (api->primary_ctx_release == nullptr) bind_symbol(library, "cuDevicePrimaryCtxRelease", &api->primary_ctx_release, &missing);
  bind_symbol(library, "cuCtxSetCurrent", &api->ctx_set_current, &missing);
  bind_symbol(library, "cuMemGetInfo_v2", &api->mem_get_info, &missing);
  bind_symbol(library, "cuMemAlloc_v2", &api->mem_alloc, &missing);
  bind_symbol(library, "cuMemFree_v2", &api->mem_free, &missing);
  bind_symbol(library, "cuMemcpyHtoDAsync_v2", &api->memcpy_htod_async, &missing);
  bind_symbol(library, "cuMemcpyDtoHAsync_v2", &api->memcpy_dtoh_async, &missing);
  bind_symbol(library, "cuMemcpyDtoDAsync_v2", &api->memcpy_dtod_async, &missing);
  bind_symbol(library, "cuMemsetD8Async", &api->memset_d8_async, &missing);
  bind_symbol(library, "cuModuleLoadDataEx", &api->module_load_data_ex, &missing);
  bind_symbol(library, "cuModuleUnload", &api->module_unload, &missing);
  bind_symbol(library, "cuModuleGetFunction", &api->module_get_function, &missing);
  bind_symbol(library, "cuLaunchKernel", &api->launch_kernel, &missing);
  bind_symbol(library, "cuStreamCreate", &api->stream_create, &missing);
  bind_symbol(library, "cuStreamDestroy_v2", &api->stream_destroy, &missing);
  bind_symbol(library, "cuStreamSynchronize", &api->stream_synchronize, &missing);
  bind_symbol(library, "cuGetErrorName", &api->get_error_name, &missing);
  bind_symbol(library, "cuStreamBeginCapture_v2", &api->stream_begin_capture, nullptr);
  bind_symbol(library, "cuStreamEndCapture", &api->stream_end_capture, nullptr);
  bind_symbol(library, "cuGraphInstantiateWithFlags", &api->graph_instantiate_with_flags, nullptr);
  bind_symbol(library, "cuGraphLaunch", &api->graph_launch, nullptr);
  bind_symbol(library, "cuGraphExecDestroy", &api->graph_exec_destroy, nullptr);
  bind_symbol(library, "cuGraphDestroy", &api->graph_destroy, nullptr);
  if (!missing.empty()) {
    return Result::failure(Status::NoRuntime, library.path + " lacks " + missing + ": this NVIDIA driver is too old; install a current driver");
  }
  *out = api.get();
  apis->emplace(library.handle, api.release());
  return Result::success();
}

cuda::DevicePtr device_address(const void* ptr) { return static_cast<cuda::DevicePtr>(reinterpret_cast<std::uintptr_t>(ptr)); }

std::atomic<std::uint64_t> next_serial{1};

class CudaDevice;

struct CudaKernel {
  const CudaDevice* owner;
  cuda::Function function;
  std::string name;
};

class CudaDevice final : public Device {
 public:
  explicit CudaDevice(const CudaApi& api) : api_(api), serial_(next_serial.fetch_add(1)) {}
  CudaDevice(const CudaDevice&) = delete;
  CudaDevice& operator=(const CudaDevice&) = delete;

  ~CudaDevice() override {
    if (context_ == nullptr) return;
    if (bind().ok()) {  // fails once the driver has shut down (process exit): then nothing of it can be released
      if (capturing_) {
        cuda::Graph graph = nullptr;
        if (api_.stream_end_capture(stream_, &graph) == cuda::kSuccess && graph != nullptr) api_.graph_destroy(graph);
        capturing_ = false;
      }
      drop_graphs();
      if (stream_ != nullptr) api_.stream_synchronize(stream_);
      for (void* ptr : allocations_) api_.mem_free(device_address(ptr));
      if (module_ != nullptr) api_.module_unload(module_);
      if (stream_ != nullptr) api_.stream_destroy(stream_);
    }
    api_.primary_ctx_release(device_);
  }

  /** Initialises the driver, picks GPU 0, retains its primary context and loads the code that fits it. */
  Result open(const CodeObjects& code, DeviceInfo* known) {
    info_.kind = Kind::Cuda;
    info_.targets = code_targets(code.directory, "cubin");
    const std::vector<std::string> ptx = code_targets(code.directory, "ptx");
    info_.targets.insert(info_.targets.end(), ptx.begin(), ptx.end());
    *known = info_;
    const std::string runtime = api_.library.path;
    cuda::Result error = api_.init(0);
    if (error == cuda::kErrorNoDevice) return no_device(runtime, "cuInit", error);
    if (error == cuda::kErrorStubLibrary) {
      return Result::failure(Status::NoRuntime, runtime +
                                                    " is the CUDA toolkit's stub, not the driver's library (cuInit: CUDA_ERROR_STUB_LIBRARY); install the "
                                                    "NVIDIA driver or point HALO_CUDA_DRIVER_LIBRARY at its libcuda.so.1");
    }
    if (error != cuda::kSuccess) return api_.failure(error, "cuInit");
    int count = 0;
    error = api_.device_get_count(&count);
    if (error == cuda::kErrorNoDevice || (error == cuda::kSuccess && count <= 0)) return no_device(runtime, "cuDeviceGetCount", error);
    if (error != cuda::kSuccess) return api_.failure(error, "cuDeviceGetCount");
    if ((error = api_.device_get(&device_, 0)) != cuda::kSuccess) return api_.failure(error, "cuDeviceGet(0)");
    char name[256] = {};
    if ((error = api_.device_get_name(name, sizeof(name) - 1, device_)) != cuda::kSuccess) return api_.failure(error, "cuDeviceGetName");
    info_.name = name;
    known->name = info_.name;
    int major = 0, minor = 0;
    if ((error = api_.device_get_attribute(&major, cuda::kAttributeComputeCapabilityMajor, device_)) != cuda::kSuccess ||
        (error = api_.device_get_attribute(&minor, cuda::kAttributeComputeCapabilityMinor, device_)) != cuda::kSuccess) {
      return api_.failure(error, "cuDeviceGetAttribute(compute capability)");
    }
    capability_ = major * 10 + minor;
    known->arch = "sm_" + std::to_string(capability_);
    cuda::Context context = nullptr;
    if ((error = api_.primary_ctx_retain(&context, device_)) != cuda::kSuccess) return api_.failure(error, "cuDevicePrimaryCtxRetain");
    context_ = context;
    if (Result memory_result = memory(&info_.free_bytes, &info_.total_bytes); !memory_result.ok()) return memory_result;
    known->free_bytes = info_.free_bytes, known->total_bytes = info_.total_bytes;
    if (Result loaded = load_module(code); !loaded.ok()) {
      if (loaded.status == Status::NoCodeForArch) loaded.message = info_.name + " (" + known->arch + "): " + loaded.message;
      return loaded;
    }
    if ((error = api_.stream_create(&stream_, cuda::kStreamNonBlocking)) != cuda::kSuccess) return api_.failure(error, "cuStreamCreate");
    return Result::success();
  }

  const DeviceInfo& info() const override { return info_; }

  Result memory(std::size_t* free_bytes, std::size_t* total_bytes) override {
    if (Result bound = bind(); !bound.ok()) return bound;
    std::size_t free_now = 0, total_now = 0;
    if (cuda::Result error = api_.mem_get_info(&free_now, &total_now); error != cuda::kSuccess) return api_.failure(error, "cuMemGetInfo");
    info_.free_bytes = free_now, info_.total_bytes = total_now;
    if (free_bytes != nullptr) *free_bytes = free_now;
    if (total_bytes != nullptr) *total_bytes = total_now;
    return Result::success();
  }

  Result alloc(std::size_t bytes, DevicePtr* out) override {
    if (out == nullptr) return Result::failure(Status::BadArgument, "alloc: no output pointer");
    *out = nullptr;
    // As the emulator: cuMemAlloc refuses 0 bytes and hipMalloc returns null, so code that ran on one would break on
    // the other; refused everywhere instead.
    if (bytes == 0) return Result::failure(Status::BadArgument, "alloc: 0 bytes; skip the buffer instead");
    if (Result bound = bind(); !bound.ok()) return bound;
    cuda::DevicePtr address = 0;
    if (cuda::Result error = api_.mem_alloc(&address, bytes); error != cuda::kSuccess) return api_.failure(error, "cuMemAlloc(" + bytes_text(bytes) + ")");
    void* ptr = reinterpret_cast<void*>(static_cast<std::uintptr_t>(address));
    try {
      allocations_.insert(ptr);
    } catch (const std::bad_alloc&) {
      api_.mem_free(address);
      return Result::failure(Status::OutOfMemory, "alloc: host memory exhausted while recording a device allocation");
    }
    *out = ptr;
    return Result::success();
  }

  void release(DevicePtr ptr) override {
    if (ptr == nullptr || allocations_.erase(ptr) == 0) return;  // not ours (or already released): never free it
    if (bind().ok()) api_.mem_free(device_address(ptr));
  }

  Result upload(DevicePtr dst, const void* src, std::size_t bytes) override {
    if (Result checked = check_copy("upload", dst, src, bytes); !checked.ok() || bytes == 0) return checked;
    if (Result bound = bind(); !bound.ok()) return bound;
    cuda::Result error = api_.memcpy_htod_async(device_address(dst), src, bytes, stream_);
    if (error != cuda::kSuccess) return api_.failure(error, "cuMemcpyHtoDAsync(" + bytes_text(bytes) + ")");
    // The driver stages a pageable source before it returns, but documents the async form only as "might be
    // synchronous"; waiting keeps the promise that the caller's buffer is free, at the cost of one copy's latency.
    if ((error = api_.stream_synchronize(stream_)) != cuda::kSuccess) return api_.failure(error, "cuStreamSynchronize(after an upload)");
    return Result::success();
  }

  Result download(void* dst, const void* src, std::size_t bytes) override {
    if (Result checked = check_copy("download", dst, src, bytes); !checked.ok() || bytes == 0) return checked;
    if (Result bound = bind(); !bound.ok()) return bound;
    cuda::Result error = api_.memcpy_dtoh_async(dst, device_address(src), bytes, stream_);
    if (error != cuda::kSuccess) return api_.failure(error, "cuMemcpyDtoHAsync(" + bytes_text(bytes) + ")");
    if ((error = api_.stream_synchronize(stream_)) != cuda::kSuccess) return api_.failure(error, "cuStreamSynchronize(after a download)");
    return Result::success();
  }

  Result copy(DevicePtr dst, const void* src, std::size_t bytes) override {
    if (Result checked = check_copy("copy", dst, src, bytes); !checked.ok() || bytes == 0) return checked;
    if (Result bound = bind(); !bound.ok()) return bound;
    cuda::Result error = api_.memcpy_dtod_async(device_address(dst), device_address(src), bytes, stream_);
    if (error != cuda::kSuccess) return api_.failure(error, "cuMemcpyDtoDAsync(" + bytes_text(bytes) + ")");
    return Result::success();
  }

  Result fill(DevicePtr dst, int byte, std::size_t bytes) override {
    if (Result checked = check_copy("fill", dst, dst, bytes); !checked.ok() || bytes == 0) return checked;
    if (Result bound = bind(); !bound.ok()) return bound;
    cuda::Result error = api_.memset_d8_async(device_address(dst), static_cast<unsigned char>(byte & 0xff), bytes, stream_);
    if (error != cuda::kSuccess) return api_.failure(error, "cuMemsetD8Async(" + bytes_text(bytes) + ")");
    return Result::success();
  }

  Result kernel(const char* name, KernelHandle* out) override {
    if (out == nullptr || name == nullptr) return Result::failure(Status::BadArgument, "kernel: no name or no output handle");
    *out = nullptr;
    try {
      auto found = kernels_.find(name);
      if (found == kernels_.end()) {
        if (Result bound = bind(); !bound.ok()) return bound;
        cuda::Function function = nullptr;
        cuda::Result error = api_.module_get_function(&function, module_, name);
        if (error != cuda::kSuccess) return api_.failure(error, std::string("cuModuleGetFunction(") + name + ", " + info_.arch + ")");
        found = kernels_.emplace(name, std::make_unique<CudaKernel>(CudaKernel{this, function, name})).first;
      }
      *out = found->second.get();
      return Result::success();
    } catch (const std::bad_alloc&) { return Result::failure(Status::OutOfMemory, std::string("kernel(") + name + "): host memory exhausted"); }
  }

  Result launch(KernelHandle handle, Dim3 grid, Dim3 block, const void* args, std::size_t args_bytes) override {
    const auto* kernel = static_cast<const CudaKernel*>(handle);
    if (kernel == nullptr || kernel->owner != this) return Result::failure(Status::BadArgument, "launch: not a kernel of this device");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0) {
      return Result::failure(Status::BadArgument, "launch(" + kernel->name + "): a grid or block dimension is 0");
    }
    if (args_bytes > 0 && args == nullptr) return Result::failure(Status::BadArgument, "launch(" + kernel->name + "): null argument block");
    if (Result bound = bind(); !bound.ok()) return bound;
    // Each kernel takes one struct by value: kernelParams[0] points at it, and the driver copies sizeof(struct) bytes
    // (it knows the size from the module). A graph captured here keeps its own copy.
    void* params[] = {const_cast<void*>(args)};
    cuda::Result error =
        api_.launch_kernel(kernel->function, grid.x, grid.y, grid.z, block.x, block.y, block.z, 0, stream_, args_bytes > 0 ? params : nullptr, nullptr);
    if (error != cuda::kSuccess) return api_.failure(error, "cuLaunchKernel(" + kernel->name + ")");
    if (capturing_) {
      captured_kernels_++;
    } else {
      launches++;
    }
    return Result::success();
  }

  Result synchronize() override {
    if (capturing_) return Result::failure(Status::BadArgument, "synchronize during graph capture: end the capture first");
    if (Result bound = bind(); !bound.ok()) return bound;
    if (cuda::Result error = api_.stream_synchronize(stream_); error != cuda::kSuccess) return api_.failure(error, "cuStreamSynchronize");
    return Result::success();
  }

  bool graphs() const override { return api_.has_graphs(); }

  Result begin_capture() override {
    if (!graphs()) return Device::begin_capture();
    if (capturing_) return Result::failure(Status::BadArgument, "begin_capture: a capture is already open");
    if (Result bound = bind(); !bound.ok()) return bound;
    // Relaxed: no rule on other threads' calls during the capture, and end_capture may come from another thread.
    if (cuda::Result error = api_.stream_begin_capture(stream_, cuda::kStreamCaptureModeRelaxed); error != cuda::kSuccess) {
      return api_.failure(error, "cuStreamBeginCapture");
    }
    capturing_ = true;
    captured_kernels_ = 0;
    return Result::success();
  }

  Result end_capture(int* graph_id) override {
    if (!graphs()) return Device::end_capture(graph_id);
    if (graph_id == nullptr) return Result::failure(Status::BadArgument, "end_capture: no output id");
    if (!capturing_) return Result::failure(Status::BadArgument, "end_capture: no capture is open");
    if (Result bound = bind(); !bound.ok()) return bound;
    capturing_ = false;
    cuda::Graph graph = nullptr;
    cuda::Result error = api_.stream_end_capture(stream_, &graph);
    if (error != cuda::kSuccess || graph == nullptr) {
      if (graph != nullptr) api_.graph_destroy(graph);
      return error != cuda::kSuccess ? api_.failure(error, "cuStreamEndCapture") : Result::failure(Status::DeviceError, "cuStreamEndCapture returned no graph");
    }
    cuda::GraphExec exec = nullptr;
    if ((error = api_.graph_instantiate_with_flags(&exec, graph, 0)) != cuda::kSuccess) {
      api_.graph_destroy(graph);
      return api_.failure(error, "cuGraphInstantiateWithFlags");
    }
    try {
      graphs_.push_back({graph, exec, captured_kernels_});
    } catch (const std::bad_alloc&) {
      api_.graph_exec_destroy(exec);
      api_.graph_destroy(graph);
      return Result::failure(Status::OutOfMemory, "end_capture: host memory exhausted");
    }
    *graph_id = static_cast<int>(graphs_.size() - 1);
    return Result::success();
  }

  Result replay(int graph_id) override {
    if (!graphs()) return Device::replay(graph_id);
    if (graph_id < 0 || static_cast<std::size_t>(graph_id) >= graphs_.size()) {
      return Result::failure(Status::BadArgument, "replay: no graph " + std::to_string(graph_id) + " (" + std::to_string(graphs_.size()) + " captured)");
    }
    if (capturing_) return Result::failure(Status::BadArgument, "replay during graph capture: end the capture first");
    if (Result bound = bind(); !bound.ok()) return bound;
    const CapturedGraph& graph = graphs_[static_cast<std::size_t>(graph_id)];
    if (cuda::Result error = api_.graph_launch(graph.exec, stream_); error != cuda::kSuccess) return api_.failure(error, "cuGraphLaunch");
    launches += graph.kernels;
    return Result::success();
  }

  void drop_graphs() override {
    for (const CapturedGraph& graph : graphs_) {
      api_.graph_exec_destroy(graph.exec);
      api_.graph_destroy(graph.graph);
    }
    graphs_.clear();
  }

 private:
  struct CapturedGraph {
    cuda::Graph graph;
    cuda::GraphExec exec;
    std::uint64_t kernels;  // kernel launches recorded in it, added to `launches` per replay
  };

  /** Makes the primary context current on the calling thread (the driver's current context is per thread). */
  Result bind() {
    thread_local std::uint64_t bound_serial = 0;
    if (bound_serial == serial_) return Result::success();
    if (context_ == nullptr) return Result::failure(Status::DeviceError, "the CUDA device has no context");
    if (cuda::Result error = api_.ctx_set_current(context_); error != cuda::kSuccess) return api_.failure(error, "cuCtxSetCurrent");
    bound_serial = serial_;
    return Result::success();
  }

  Result no_device(const std::string& runtime, const char* call, cuda::Result error) const {
    return Result::failure(Status::NoDevice, runtime + " loaded but reports no GPU (" + call + ": " +
                                                 (error == cuda::kSuccess ? std::string("0 devices") : api_.error_name(error)) +
                                                 "). Check that the NVIDIA kernel module is loaded (nvidia-smi) and CUDA_VISIBLE_DEVICES");
  }

  /** Copies and fills are refused during a capture, as on the emulator: only launches are recorded (a host copy would
   *  replay a stale host pointer; per-step inputs are uploaded before a replay). */
  Result check_copy(const char* what, const void* dst, const void* src, std::size_t bytes) const {
    if (capturing_)
      return Result::failure(Status::BadArgument, std::string(what) + " during graph capture: only launches are captured; do it before capturing");
    if (bytes > 0 && (dst == nullptr || src == nullptr)) return Result::failure(Status::BadArgument, std::string(what) + ": null pointer");
    return Result::success();
  }

  /** cuModuleLoadDataEx with the JIT's error log (PTX); `log` gets the log's first line when loading fails. */
  cuda::Result load_image(const std::vector<char>& image, cuda::Module* module, std::string* log) {
    char buffer[4096] = {};
    int options[] = {cuda::kJitErrorLogBuffer, cuda::kJitErrorLogBufferSizeBytes};
    void* values[] = {buffer, reinterpret_cast<void*>(static_cast<std::uintptr_t>(sizeof(buffer) - 1))};
    cuda::Result error = api_.module_load_data_ex(module, image.data(), 2, options, values);
    buffer[sizeof(buffer) - 1] = '\0';
    std::string text = buffer;
    if (const auto end = text.find('\n'); end != std::string::npos) text.resize(end);
    *log = text;
    return error;
  }

  /** The exact cubin, else the PTX of the highest capability not above the GPU's; none: Status::NoCodeForArch. */
  Result load_module(const CodeObjects& code) {
    const std::string exact = "sm_" + std::to_string(capability_);
    std::vector<std::string> order;
    for (const std::string& target : info_.targets) {
      if (target == exact) order.push_back(target);
    }
    std::string best_ptx;
    int best_capability = -1;
    for (const std::string& target : info_.targets) {
      if (target.compare(0, 8, "compute_") != 0) continue;
      const int capability = std::atoi(target.c_str() + 8);
      if (capability > 0 && capability <= capability_ && capability > best_capability) best_ptx = target, best_capability = capability;
    }
    if (!best_ptx.empty()) order.push_back(best_ptx);
    if (order.empty()) {
      return Result::failure(Status::NoCodeForArch, "the package has no cubin for " + exact + " and no PTX for " + exact + " or below (it has: " +
                                                        (info_.targets.empty() ? std::string("none") : targets_text()) + " in " + code.directory + ")");
    }
    std::string errors;
    std::vector<char> image;
    for (const std::string& target : order) {
      const bool ptx = target.compare(0, 8, "compute_") == 0;
      Result read = read_code_object(code.directory + "/halo_kernels." + target + (ptx ? ".ptx" : ".cubin"), ptx, &image);
      cuda::Module module = nullptr;
      cuda::Result error = cuda::kSuccess;
      std::string log;
      if (read.ok()) error = load_image(image, &module, &log);
      if (read.ok() && error == cuda::kSuccess) {
        module_ = module;
        info_.arch = target;
        return Result::success();
      }
      if (error == cuda::kErrorOutOfMemory) return api_.failure(error, "cuModuleLoadData(" + target + ")");
      errors += (errors.empty() ? "" : ", ") + target + ": " + (read.ok() ? api_.error_name(error) + (log.empty() ? "" : " (" + log + ")") : read.message);
    }
    int version = 0;
    std::string driver;
    if (api_.driver_get_version(&version) == cuda::kSuccess)
      driver = "; driver CUDA " + std::to_string(version / 1000) + "." + std::to_string(version % 1000 / 10);
    return Result::failure(Status::NoCodeForArch,
                           "no code object of this package loads (" + errors + driver + "); PTX from a newer CUDA than the driver needs a newer driver");
  }

  std::string targets_text() const {
    std::string text;
    for (const std::string& target : info_.targets) text += (text.empty() ? "" : " ") + target;
    return text;
  }

  const CudaApi& api_;
  const std::uint64_t serial_;  // identifies this device to bind()'s per-thread cache
  DeviceInfo info_;
  cuda::Device device_ = 0;     // GPU 0 of what the driver shows (CUDA_VISIBLE_DEVICES selects another)
  int capability_ = 0;          // compute capability as major * 10 + minor: 90 for sm_90
  cuda::Context context_ = nullptr;  // the GPU's primary context, retained while the device lives
  cuda::Stream stream_ = nullptr;
  cuda::Module module_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<CudaKernel>> kernels_;  // by name; handles point into it
  std::unordered_set<void*> allocations_;                                  // live cuMemAlloc blocks, freed with the device
  std::vector<CapturedGraph> graphs_;                                       // by graph id
  bool capturing_ = false;
  std::uint64_t captured_kernels_ = 0;
};

}  // namespace

Result open_cuda(const CodeObjects& code, std::unique_ptr<Device>* out, DeviceInfo* known) {
  known->kind = Kind::Cuda;
  known->targets = code_targets(code.directory, "cubin");
  const std::vector<std::string> ptx = code_targets(code.directory, "ptx");
  known->targets.insert(known->targets.end(), ptx.begin(), ptx.end());
  const CudaApi* api = nullptr;
  if (Result loaded = load_cuda_api(&api); !loaded.ok()) return loaded;
  auto device = std::make_unique<CudaDevice>(*api);
  if (Result opened = device->open(code, known); !opened.ok()) return opened;
  *out = std::move(device);
  return Result::success();
}

}  // namespace detail
}  // namespace halo_gpu
