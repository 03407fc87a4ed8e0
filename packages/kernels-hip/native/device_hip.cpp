// device_hip.cpp: the Device on an AMD GPU through the HIP runtime (libamdhip64), loaded with dlopen at run time so the
// addon builds and loads without ROCm. The architecture is found by trying each of the package's code objects
// (halo_kernels.<gfx>.hsaco) with hipModuleLoadData until one loads — hipDeviceProp_t is not read, as its layout
// changes between ROCm versions — and is named through HSA only to explain why none loaded.
//
// Threads: a HipDevice is used by one thread at a time (the model serialises its steps); that thread may change between
// calls (the binding's async workers), so every call makes the device current on the calling thread first.
// Ordering: everything goes to one non-blocking stream. upload and download wait for their copy (the host buffer is
// free on return); copy, fill and launch are queued; synchronize waits for all of it.
#include <dlfcn.h>

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

constexpr const char* kHipOverrideEnv = "HALO_HIP_RUNTIME_LIBRARY";

/** The HIP runtime's entry points; one per loaded library, never freed (the library is never unloaded). */
struct HipApi {
  Library library;
  hip::InitFn init = nullptr;
  hip::GetDeviceCountFn get_device_count = nullptr;
  hip::SetDeviceFn set_device = nullptr;
  hip::DeviceGetFn device_get = nullptr;
  hip::DeviceGetNameFn device_get_name = nullptr;
  hip::MemGetInfoFn mem_get_info = nullptr;
  hip::MallocFn malloc = nullptr;
  hip::FreeFn free = nullptr;
  hip::MemcpyAsyncFn memcpy_async = nullptr;
  hip::MemsetAsyncFn memset_async = nullptr;
  hip::ModuleLoadDataFn module_load_data = nullptr;
  hip::ModuleUnloadFn module_unload = nullptr;
  hip::ModuleGetFunctionFn module_get_function = nullptr;
  hip::ModuleLaunchKernelFn module_launch_kernel = nullptr;
  hip::StreamCreateWithFlagsFn stream_create_with_flags = nullptr;
  hip::StreamDestroyFn stream_destroy = nullptr;
  hip::StreamSynchronizeFn stream_synchronize = nullptr;
  hip::GetErrorNameFn get_error_name = nullptr;
  // Graphs (optional: without them the device runs every launch directly).
  hip::StreamBeginCaptureFn stream_begin_capture = nullptr;
  hip::StreamEndCaptureFn stream_end_capture = nullptr;
  hip::GraphInstantiateWithFlagsFn graph_instantiate_with_flags = nullptr;
  hip::GraphLaunchFn graph_launch = nullptr;
  hip::GraphExecDestroyFn graph_exec_destroy = nullptr;
  hip::GraphDestroyFn graph_destroy = nullptr;

  bool has_graphs() const {
    return stream_begin_capture && stream_end_capture && graph_instantiate_with_flags && graph_launch && graph_exec_destroy && graph_destroy;
  }

  std::string error_name(hip::Error error) const {
    const char* name = get_error_name != nullptr ? get_error_name(error) : nullptr;
    return name != nullptr ? std::string(name) : "hipError " + std::to_string(error);
  }

  /** `call` failed with `error`: "hipMalloc(268435456 bytes): hipErrorOutOfMemory". */
  Result failure(hip::Error error, const std::string& call) const {
    return Result::failure(error == hip::kErrorOutOfMemory ? Status::OutOfMemory : Status::DeviceError, call + ": " + error_name(error));
  }
};

template <typename Fn>
void bind_symbol(const Library& library, const char* name, Fn* out, std::string* missing) {
  *out = reinterpret_cast<Fn>(find_symbol(library, name));
  if (*out == nullptr && missing != nullptr) *missing += (missing->empty() ? "" : ", ") + std::string(name);
}

std::vector<std::string> hip_candidates() {
  std::vector<std::string> names = {"libamdhip64.so", "libamdhip64.so.7", "libamdhip64.so.6", "libamdhip64.so.5"};
  // Newest major first: a newer ROCm knows more GPUs (gfx1151 needs 6.4 or later). Then ROCm's own install paths,
  // which are not always on the loader's path.
  std::vector<std::string> directories;
  if (const char* rocm = std::getenv("ROCM_PATH"); rocm != nullptr && rocm[0] != '\0') directories.push_back(std::string(rocm) + "/lib");
  directories.push_back("/opt/rocm/lib");
  std::vector<std::string> candidates = names;
  for (const std::string& directory : directories) {
    for (const std::string& name : names) candidates.push_back(directory + "/" + name);
  }
  return candidates;
}

std::mutex api_mutex;

Result load_hip_api(const HipApi** out) {
  Library library;
  Result loaded = load_library("HIP runtime (libamdhip64)", kHipOverrideEnv, hip_candidates(),
                               "Install AMD's ROCm HIP runtime (ROCm 6.4 or newer for gfx1150/gfx1151) or set HALO_HIP_RUNTIME_LIBRARY to "
                               "libamdhip64.so's path.",
                               &library);
  if (!loaded.ok()) return loaded;
  std::lock_guard<std::mutex> lock(api_mutex);
  static auto* apis = new std::unordered_map<void*, HipApi*>();  // by library handle; never freed, like the library
  if (auto found = apis->find(library.handle); found != apis->end()) {
    *out = found->second;
    return Result::success();
  }
  auto api = std::make_unique<HipApi>();
  api->library = library;
  std::string missing;
  bind_symbol(library, "hipInit", &api->init, &missing);
  bind_symbol(library, "hipGetDeviceCount", &api->get_device_count, &missing);
  bind_symbol(library, "hipSetDevice", &api->set_device, &missing);
  bind_symbol(library, "hipDeviceGet", &api->device_get, &missing);
  bind_symbol(library, "hipDeviceGetName", &api->device_get_name, &missing);
  bind_symbol(library, "hipMemGetInfo", &api->mem_get_info, &missing);
  bind_symbol(library, "hipMalloc", &api->malloc, &missing);
  bind_symbol(library, "hipFree", &api->free, &missing);
  bind_symbol(library, "hipMemcpyAsync", &api->memcpy_async, &missing);
  bind_symbol(library, "hipMemsetAsync", &api->memset_async, &missing);
  bind_symbol(library, "hipModuleLoadData", &api->module_load_data, &missing);
  bind_symbol(library, "hipModuleUnload", &api->module_unload, &missing);
  bind_symbol(library, "hipModuleGetFunction", &api->module_get_function, &missing);
  bind_symbol(library, "hipModuleLaunchKernel", &api->module_launch_kernel, &missing);
  bind_symbol(library, "hipStreamCreateWithFlags", &api->stream_create_with_flags, &missing);
  bind_symbol(library, "hipStreamDestroy", &api->stream_destroy, &missing);
  bind_symbol(library, "hipStreamSynchronize", &api->stream_synchronize, &missing);
  bind_symbol(library, "hipGetErrorName", &api->get_error_name, &missing);
  bind_symbol(library, "hipStreamBeginCapture", &api->stream_begin_capture, nullptr);
  bind_symbol(library, "hipStreamEndCapture", &api->stream_end_capture, nullptr);
  bind_symbol(library, "hipGraphInstantiateWithFlags", &api->graph_instantiate_with_flags, nullptr);
  bind_symbol(library, "hipGraphLaunch", &api->graph_launch, nullptr);
  bind_symbol(library, "hipGraphExecDestroy", &api->graph_exec_destroy, nullptr);
  bind_symbol(library, "hipGraphDestroy", &api->graph_destroy, nullptr);
  if (!missing.empty()) {
    return Result::failure(Status::NoRuntime, library.path + " lacks " + missing + ": this HIP runtime is too old or not ROCm's; install ROCm 6.4 or newer");
  }
  *out = api.get();
  apis->emplace(library.handle, api.release());
  return Result::success();
}

// The GPU architectures HSA reports ("gfx1151"), to say which target is missing. HIP has already loaded HSA; it is
// looked up, not loaded, so that this never starts a second runtime.
std::string hsa_gpu_architectures() {
  void* library = dlopen("libhsa-runtime64.so.1", RTLD_NOW | RTLD_NOLOAD);
  if (library == nullptr) library = dlopen("libhsa-runtime64.so", RTLD_NOW | RTLD_NOLOAD);
  if (library == nullptr) return "";
  auto init = reinterpret_cast<hsa::InitFn>(dlsym(library, "hsa_init"));
  auto shut_down = reinterpret_cast<hsa::ShutDownFn>(dlsym(library, "hsa_shut_down"));
  auto iterate_agents = reinterpret_cast<hsa::IterateAgentsFn>(dlsym(library, "hsa_iterate_agents"));
  auto agent_get_info = reinterpret_cast<hsa::AgentGetInfoFn>(dlsym(library, "hsa_agent_get_info"));
  std::string names;
  if (init != nullptr && shut_down != nullptr && iterate_agents != nullptr && agent_get_info != nullptr && init() == hsa::kSuccess) {
    struct Query {
      hsa::AgentGetInfoFn get_info;
      std::vector<std::string> names;
    } query{agent_get_info, {}};
    iterate_agents(
        [](hsa::Agent agent, void* data) -> hsa::Status {
          auto* q = static_cast<Query*>(data);
          int type = -1;
          char name[64] = {};
          if (q->get_info(agent, hsa::kAgentInfoDevice, &type) != hsa::kSuccess || type != hsa::kDeviceTypeGpu) return hsa::kSuccess;
          if (q->get_info(agent, hsa::kAgentInfoName, name) != hsa::kSuccess) return hsa::kSuccess;
          name[sizeof(name) - 1] = '\0';
          std::string text = name;
          for (const std::string& known : q->names) {
            if (known == text) return hsa::kSuccess;
          }
          q->names.push_back(text);
          return hsa::kSuccess;
        },
        &query);
    shut_down();
    for (const std::string& name : query.names) names += (names.empty() ? "" : ", ") + name;
  }
  dlclose(library);  // only drops the reference taken by RTLD_NOLOAD; HIP keeps HSA loaded
  return names;
}

std::atomic<std::uint64_t> next_serial{1};

class HipDevice;

struct HipKernel {
  const HipDevice* owner;
  hip::Function function;
  std::string name;
};

class HipDevice final : public Device {
 public:
  explicit HipDevice(const HipApi& api) : api_(api), serial_(next_serial.fetch_add(1)) {}
  HipDevice(const HipDevice&) = delete;
  HipDevice& operator=(const HipDevice&) = delete;

  ~HipDevice() override {
    if (!bind().ok()) return;  // the runtime is gone (process exit): nothing of it can be released
    if (capturing_) {
      hip::Graph graph = nullptr;
      if (api_.stream_end_capture(stream_, &graph) == hip::kSuccess && graph != nullptr) api_.graph_destroy(graph);
      capturing_ = false;
    }
    drop_graphs();
    if (stream_ != nullptr) api_.stream_synchronize(stream_);
    for (void* ptr : allocations_) api_.free(ptr);
    if (module_ != nullptr) api_.module_unload(module_);
    if (stream_ != nullptr) api_.stream_destroy(stream_);
  }

  /** Initialises the runtime, picks GPU 0 and loads the code object that fits it. */
  Result open(const CodeObjects& code, DeviceInfo* known) {
    info_.kind = Kind::Hip;
    info_.targets = code_targets(code.directory, "hsaco");
    *known = info_;
    const std::string runtime = api_.library.path;
    // Without a GPU, ROCm 5.2's hipInit answers hipErrorInvalidDevice and hipGetDeviceCount hipErrorNoDevice: the count
    // decides whether a failed init means "no GPU".
    const hip::Error init_error = api_.init(0);
    int count = 0;
    hip::Error error = api_.get_device_count(&count);
    if (error == hip::kErrorNoDevice || (error == hip::kSuccess && count <= 0)) return no_device(runtime, init_error, error);
    if (init_error != hip::kSuccess) return api_.failure(init_error, "hipInit");
    if (error != hip::kSuccess) return api_.failure(error, "hipGetDeviceCount");
    if (Result bound = bind(); !bound.ok()) return bound;
    hip::Device device = 0;
    if ((error = api_.device_get(&device, ordinal_)) != hip::kSuccess) return api_.failure(error, "hipDeviceGet(0)");
    char name[256] = {};
    if ((error = api_.device_get_name(name, sizeof(name) - 1, device)) != hip::kSuccess) return api_.failure(error, "hipDeviceGetName");
    info_.name = name;
    known->name = info_.name;
    if (Result memory_result = memory(&info_.free_bytes, &info_.total_bytes); !memory_result.ok()) return memory_result;
    known->free_bytes = info_.free_bytes, known->total_bytes = info_.total_bytes;

    if (Result loaded = load_module(code); !loaded.ok()) {
      known->arch = hsa_gpu_architectures();
      if (loaded.status == Status::NoCodeForArch) {
        loaded.message = info_.name + (known->arch.empty() ? "" : " (" + known->arch + ")") + ": " + loaded.message;
      }
      return loaded;
    }
    known->arch = info_.arch;
    if ((error = api_.stream_create_with_flags(&stream_, hip::kStreamNonBlocking)) != hip::kSuccess) return api_.failure(error, "hipStreamCreateWithFlags");
    return Result::success();
  }

  const DeviceInfo& info() const override { return info_; }

  Result memory(std::size_t* free_bytes, std::size_t* total_bytes) override {
    if (Result bound = bind(); !bound.ok()) return bound;
    std::size_t free_now = 0, total_now = 0;
    if (hip::Error error = api_.mem_get_info(&free_now, &total_now); error != hip::kSuccess) return api_.failure(error, "hipMemGetInfo");
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
    void* ptr = nullptr;
    if (hip::Error error = api_.malloc(&ptr, bytes); error != hip::kSuccess) return api_.failure(error, "hipMalloc(" + bytes_text(bytes) + ")");
    try {
      allocations_.insert(ptr);
    } catch (const std::bad_alloc&) {
      api_.free(ptr);
      return Result::failure(Status::OutOfMemory, "alloc: host memory exhausted while recording a device allocation");
    }
    *out = ptr;
    return Result::success();
  }

  void release(DevicePtr ptr) override {
    if (ptr == nullptr || allocations_.erase(ptr) == 0) return;  // not ours (or already released): never hipFree it
    if (bind().ok()) api_.free(ptr);
  }

  Result upload(DevicePtr dst, const void* src, std::size_t bytes) override {
    if (Result checked = check_copy("upload", dst, src, bytes); !checked.ok() || bytes == 0) return checked;
    if (Result bound = bind(); !bound.ok()) return bound;
    hip::Error error = api_.memcpy_async(dst, src, bytes, hip::kMemcpyHostToDevice, stream_);
    if (error != hip::kSuccess) return api_.failure(error, "hipMemcpyAsync(host to device, " + bytes_text(bytes) + ")");
    // HIP does not promise that a pageable source may be reused once hipMemcpyAsync returns, so wait for the copy.
    if ((error = api_.stream_synchronize(stream_)) != hip::kSuccess) return api_.failure(error, "hipStreamSynchronize(after an upload)");
    return Result::success();
  }

  Result download(void* dst, const void* src, std::size_t bytes) override {
    if (Result checked = check_copy("download", dst, src, bytes); !checked.ok() || bytes == 0) return checked;
    if (Result bound = bind(); !bound.ok()) return bound;
    hip::Error error = api_.memcpy_async(dst, src, bytes, hip::kMemcpyDeviceToHost, stream_);
    if (error != hip::kSuccess) return api_.failure(error, "hipMemcpyAsync(device to host, " + bytes_text(bytes) + ")");
    if ((error = api_.stream_synchronize(stream_)) != hip::kSuccess) return api_.failure(error, "hipStreamSynchronize(after a download)");
    return Result::success();
  }

  Result copy(DevicePtr dst, const void* src, std::size_t bytes) override {
    if (Result checked = check_copy("copy", dst, src, bytes); !checked.ok() || bytes == 0) return checked;
    if (Result bound = bind(); !bound.ok()) return bound;
    hip::Error error = api_.memcpy_async(dst, src, bytes, hip::kMemcpyDeviceToDevice, stream_);
    if (error != hip::kSuccess) return api_.failure(error, "hipMemcpyAsync(device to device, " + bytes_text(bytes) + ")");
    return Result::success();
  }

  Result fill(DevicePtr dst, int byte, std::size_t bytes) override {
    if (Result checked = check_copy("fill", dst, dst, bytes); !checked.ok() || bytes == 0) return checked;
    if (Result bound = bind(); !bound.ok()) return bound;
    hip::Error error = api_.memset_async(dst, byte & 0xff, bytes, stream_);
    if (error != hip::kSuccess) return api_.failure(error, "hipMemsetAsync(" + bytes_text(bytes) + ")");
    return Result::success();
  }

  Result kernel(const char* name, KernelHandle* out) override {
    if (out == nullptr || name == nullptr) return Result::failure(Status::BadArgument, "kernel: no name or no output handle");
    *out = nullptr;
    try {
      auto found = kernels_.find(name);
      if (found == kernels_.end()) {
        if (Result bound = bind(); !bound.ok()) return bound;
        hip::Function function = nullptr;
        hip::Error error = api_.module_get_function(&function, module_, name);
        if (error != hip::kSuccess) return api_.failure(error, std::string("hipModuleGetFunction(") + name + ", " + info_.arch + ")");
        found = kernels_.emplace(name, std::make_unique<HipKernel>(HipKernel{this, function, name})).first;
      }
      *out = found->second.get();
      return Result::success();
    } catch (const std::bad_alloc&) { return Result::failure(Status::OutOfMemory, std::string("kernel(") + name + "): host memory exhausted"); }
  }

  Result launch(KernelHandle handle, Dim3 grid, Dim3 block, const void* args, std::size_t args_bytes) override {
    const auto* kernel = static_cast<const HipKernel*>(handle);
    if (kernel == nullptr || kernel->owner != this) return Result::failure(Status::BadArgument, "launch: not a kernel of this device");
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || block.x == 0 || block.y == 0 || block.z == 0) {
      return Result::failure(Status::BadArgument, "launch(" + kernel->name + "): a grid or block dimension is 0");
    }
    if (args_bytes > 0 && args == nullptr) return Result::failure(Status::BadArgument, "launch(" + kernel->name + "): null argument block");
    if (Result bound = bind(); !bound.ok()) return bound;
    // The argument block goes through `extra` as the kernel's packed argument buffer (each kernel takes one struct by
    // value): ROCm 5.x documents kernelParams as unimplemented, and graph capture copies the buffer either way.
    std::size_t size = args_bytes;
    void* extra[] = {hip::kLaunchParamBufferPointer, const_cast<void*>(args), hip::kLaunchParamBufferSize, &size, hip::kLaunchParamEnd};
    hip::Error error =
        api_.module_launch_kernel(kernel->function, grid.x, grid.y, grid.z, block.x, block.y, block.z, 0, stream_, nullptr, args_bytes > 0 ? extra : nullptr);
    if (error != hip::kSuccess) return api_.failure(error, "hipModuleLaunchKernel(" + kernel->name + ")");
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
    if (hip::Error error = api_.stream_synchronize(stream_); error != hip::kSuccess) return api_.failure(error, "hipStreamSynchronize");
    return Result::success();
  }

  bool graphs() const override { return api_.has_graphs(); }

  Result begin_capture() override {
    if (!graphs()) return Device::begin_capture();
    if (capturing_) return Result::failure(Status::BadArgument, "begin_capture: a capture is already open");
    if (Result bound = bind(); !bound.ok()) return bound;
    // Relaxed: no rule on other threads' calls during the capture, and end_capture may come from another thread.
    if (hip::Error error = api_.stream_begin_capture(stream_, hip::kStreamCaptureModeRelaxed); error != hip::kSuccess) {
      return api_.failure(error, "hipStreamBeginCapture");
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
    hip::Graph graph = nullptr;
    hip::Error error = api_.stream_end_capture(stream_, &graph);
    if (error != hip::kSuccess || graph == nullptr) {
      if (graph != nullptr) api_.graph_destroy(graph);
      return error != hip::kSuccess ? api_.failure(error, "hipStreamEndCapture")
                                    : Result::failure(Status::DeviceError, "hipStreamEndCapture returned no graph");
    }
    hip::GraphExec exec = nullptr;
    if ((error = api_.graph_instantiate_with_flags(&exec, graph, 0)) != hip::kSuccess) {
      api_.graph_destroy(graph);
      return api_.failure(error, "hipGraphInstantiateWithFlags");
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
    if (hip::Error error = api_.graph_launch(graph.exec, stream_); error != hip::kSuccess) return api_.failure(error, "hipGraphLaunch");
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
    hip::Graph graph;
    hip::GraphExec exec;
    std::uint64_t kernels;  // kernel launches recorded in it, added to `launches` per replay
  };

  /** Makes GPU `ordinal_` current on the calling thread (HIP's current device is per thread). */
  Result bind() {
    thread_local std::uint64_t bound_serial = 0;
    if (bound_serial == serial_) return Result::success();
    if (hip::Error error = api_.set_device(ordinal_); error != hip::kSuccess) return api_.failure(error, "hipSetDevice(" + std::to_string(ordinal_) + ")");
    bound_serial = serial_;
    return Result::success();
  }

  Result no_device(const std::string& runtime, hip::Error init_error, hip::Error count_error) const {
    std::string answers = init_error == hip::kSuccess ? "" : "hipInit: " + api_.error_name(init_error) + ", ";
    answers += "hipGetDeviceCount: " + (count_error == hip::kSuccess ? std::string("0 devices") : api_.error_name(count_error));
    return Result::failure(Status::NoDevice, runtime + " loaded but reports no GPU (" + answers +
                                                 "). Check that the amdgpu driver is loaded, /dev/kfd exists and this user may open it (groups render, video)");
  }

  /** Copies and fills are refused during a capture, as on the emulator: only launches are recorded (a host copy would
   *  replay a stale host pointer; per-step inputs are uploaded before a replay). */
  Result check_copy(const char* what, const void* dst, const void* src, std::size_t bytes) const {
    if (capturing_)
      return Result::failure(Status::BadArgument, std::string(what) + " during graph capture: only launches are captured; do it before capturing");
    if (bytes > 0 && (dst == nullptr || src == nullptr)) return Result::failure(Status::BadArgument, std::string(what) + ": null pointer");
    return Result::success();
  }

  /** Loads the first code object GPU `ordinal_` accepts; none: Status::NoCodeForArch with each target's error. */
  Result load_module(const CodeObjects& code) {
    if (info_.targets.empty()) {
      return Result::failure(Status::NoCodeForArch, "no HIP code objects (halo_kernels.<gfx>.hsaco) in " + code.directory +
                                                        "; build them with the package's build-kernels script (needs clang-19)");
    }
    std::string errors;
    std::vector<char> image;
    for (const std::string& target : info_.targets) {
      Result read = read_code_object(code.directory + "/halo_kernels." + target + ".hsaco", false, &image);
      hip::Module module = nullptr;
      hip::Error error = hip::kSuccess;
      if (read.ok()) error = api_.module_load_data(&module, image.data());
      if (read.ok() && error == hip::kSuccess) {
        module_ = module;
        info_.arch = target;
        return Result::success();
      }
      if (error == hip::kErrorOutOfMemory) return api_.failure(error, "hipModuleLoadData(" + target + ")");
      errors += (errors.empty() ? "" : ", ") + target + ": " + (read.ok() ? api_.error_name(error) : read.message);
    }
    return Result::failure(Status::NoCodeForArch, "no code object of this package loads (" + errors + "); the package has code for " + targets_text() +
                                                      " — a GPU of another architecture needs its own build (or a ROCm that knows the GPU)");
  }

  std::string targets_text() const {
    std::string text;
    for (const std::string& target : info_.targets) text += (text.empty() ? "" : " ") + target;
    return text;
  }

  const HipApi& api_;
  const std::uint64_t serial_;  // identifies this device to bind()'s per-thread cache
  const int ordinal_ = 0;       // GPU 0 of what the runtime shows (HIP_VISIBLE_DEVICES selects another)
  DeviceInfo info_;
  hip::Stream stream_ = nullptr;
  hip::Module module_ = nullptr;
  std::unordered_map<std::string, std::unique_ptr<HipKernel>> kernels_;  // by name; handles point into it
  std::unordered_set<void*> allocations_;                                 // live hipMalloc blocks, freed with the device
  std::vector<CapturedGraph> graphs_;                                      // by graph id
  bool capturing_ = false;
  std::uint64_t captured_kernels_ = 0;
};

}  // namespace

Result open_hip(const CodeObjects& code, std::unique_ptr<Device>* out, DeviceInfo* known) {
  known->kind = Kind::Hip;
  known->targets = code_targets(code.directory, "hsaco");
  const HipApi* api = nullptr;
  if (Result loaded = load_hip_api(&api); !loaded.ok()) return loaded;
  auto device = std::make_unique<HipDevice>(*api);
  if (Result opened = device->open(code, known); !opened.ok()) return opened;
  *out = std::move(device);
  return Result::success();
}

}  // namespace detail
}  // namespace halo_gpu
