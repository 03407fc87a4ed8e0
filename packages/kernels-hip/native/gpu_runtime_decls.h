// gpu_runtime_decls.h: the few HIP runtime, HSA and CUDA driver types, constants and function signatures that
// device_hip.cpp and device_cuda.cpp call through dlsym — declared here so that no vendor header (and no ROCm or CUDA
// install) is needed to build the addon. Values were checked against ROCm 5.2's hip_runtime_api.h / driver_types.h /
// hsa.h and CUDA 13's cuda.h; they are ABI (enums as int, handles as opaque pointers) and have not changed since
// (ROCm 6 and 7 kept them; CUDA exports the `_v2` symbols named below since CUDA 4 / 10.1 / 11.4).
// Also: the internal entry points of device_hip.cpp / device_cuda.cpp and the helpers of device.cpp they share.
#ifndef HALO_GPU_RUNTIME_DECLS_H
#define HALO_GPU_RUNTIME_DECLS_H

#include <cstddef>
#include <memory>
#include <string>
#include <vector>

#include "device.h"

namespace halo_gpu {

// ---------------------------------------------------------------------------------------------------------------
// HIP runtime (libamdhip64), C ABI.
namespace hip {
using Error = int;  // hipError_t
constexpr Error kSuccess = 0;
constexpr Error kErrorOutOfMemory = 2;  // hipErrorOutOfMemory (= hipErrorMemoryAllocation)
constexpr Error kErrorNoDevice = 100;
constexpr Error kErrorNoBinaryForGpu = 209;

using Device = int;  // hipDevice_t
using Stream = struct ihipStream_t*;
using Module = struct ihipModule_t*;
using Function = struct ihipModuleSymbol_t*;
using Graph = struct ihipGraph*;
using GraphExec = struct hipGraphExec*;
using GraphNode = struct hipGraphNode*;

// hipMemcpyKind
constexpr int kMemcpyHostToDevice = 1;
constexpr int kMemcpyDeviceToHost = 2;
constexpr int kMemcpyDeviceToDevice = 3;
constexpr unsigned kStreamNonBlocking = 0x01;
// hipStreamCaptureMode: Relaxed, so that capture sets no per-thread rule (see device_hip.cpp).
constexpr int kStreamCaptureModeRelaxed = 2;
// hipModuleLaunchKernel's `extra` keys.
inline void* const kLaunchParamBufferPointer = reinterpret_cast<void*>(0x01);
inline void* const kLaunchParamBufferSize = reinterpret_cast<void*>(0x02);
inline void* const kLaunchParamEnd = reinterpret_cast<void*>(0x03);

using InitFn = Error (*)(unsigned flags);
using GetDeviceCountFn = Error (*)(int* count);
using SetDeviceFn = Error (*)(int device);
using DeviceGetFn = Error (*)(Device* device, int ordinal);
using DeviceGetNameFn = Error (*)(char* name, int length, Device device);
using MemGetInfoFn = Error (*)(std::size_t* free_bytes, std::size_t* total_bytes);
using MallocFn = Error (*)(void** ptr, std::size_t bytes);
using FreeFn = Error (*)(void* ptr);
using MemcpyAsyncFn = Error (*)(void* dst, const void* src, std::size_t bytes, int kind, Stream stream);
using MemsetAsyncFn = Error (*)(void* dst, int value, std::size_t bytes, Stream stream);
using ModuleLoadDataFn = Error (*)(Module* module, const void* image);
using ModuleUnloadFn = Error (*)(Module module);
using ModuleGetFunctionFn = Error (*)(Function* function, Module module, const char* name);
using ModuleLaunchKernelFn = Error (*)(Function function, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x, unsigned block_y,
                                       unsigned block_z, unsigned shared_bytes, Stream stream, void** kernel_params, void** extra);
using StreamCreateWithFlagsFn = Error (*)(Stream* stream, unsigned flags);
using StreamDestroyFn = Error (*)(Stream stream);
using StreamSynchronizeFn = Error (*)(Stream stream);
using GetErrorNameFn = const char* (*)(Error error);
using StreamBeginCaptureFn = Error (*)(Stream stream, int mode);
using StreamEndCaptureFn = Error (*)(Stream stream, Graph* graph);
using GraphInstantiateWithFlagsFn = Error (*)(GraphExec* exec, Graph graph, unsigned long long flags);
using GraphLaunchFn = Error (*)(GraphExec exec, Stream stream);
using GraphExecDestroyFn = Error (*)(GraphExec exec);
using GraphDestroyFn = Error (*)(Graph graph);
}  // namespace hip

// HSA runtime (libhsa-runtime64, loaded by HIP itself): only to name the GPU's architecture ("gfx1151") when no code
// object of the package loads. hipDeviceProp_t would say it too, but its layout differs between ROCm versions.
namespace hsa {
using Status = int;  // hsa_status_t
constexpr Status kSuccess = 0;
struct Agent {
  unsigned long long handle;
};
constexpr int kAgentInfoName = 0;     // HSA_AGENT_INFO_NAME: char[64]
constexpr int kAgentInfoDevice = 17;  // HSA_AGENT_INFO_DEVICE: hsa_device_type_t
constexpr int kDeviceTypeGpu = 1;
using InitFn = Status (*)();
using ShutDownFn = Status (*)();
using IterateAgentsFn = Status (*)(Status (*callback)(Agent agent, void* data), void* data);
using AgentGetInfoFn = Status (*)(Agent agent, int attribute, void* value);
}  // namespace hsa

// ---------------------------------------------------------------------------------------------------------------
// CUDA driver API (libcuda), C ABI.
namespace cuda {
using Result = int;  // CUresult
constexpr Result kSuccess = 0;
constexpr Result kErrorOutOfMemory = 2;
constexpr Result kErrorStubLibrary = 34;
constexpr Result kErrorNoDevice = 100;

using DevicePtr = unsigned long long;  // CUdeviceptr (64-bit)
using Device = int;                    // CUdevice
using Context = struct CUctx_st*;
using Module = struct CUmod_st*;
using Function = struct CUfunc_st*;
using Stream = struct CUstream_st*;
using Graph = struct CUgraph_st*;
using GraphExec = struct CUgraphExec_st*;

constexpr int kAttributeComputeCapabilityMajor = 75;
constexpr int kAttributeComputeCapabilityMinor = 76;
constexpr unsigned kStreamNonBlocking = 0x1;
constexpr int kStreamCaptureModeRelaxed = 2;
constexpr int kJitErrorLogBuffer = 5;           // CU_JIT_ERROR_LOG_BUFFER
constexpr int kJitErrorLogBufferSizeBytes = 6;  // CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES

using InitFn = Result (*)(unsigned flags);
using DriverGetVersionFn = Result (*)(int* version);
using DeviceGetCountFn = Result (*)(int* count);
using DeviceGetFn = Result (*)(Device* device, int ordinal);
using DeviceGetNameFn = Result (*)(char* name, int length, Device device);
using DeviceGetAttributeFn = Result (*)(int* value, int attribute, Device device);
using DevicePrimaryCtxRetainFn = Result (*)(Context* context, Device device);
using DevicePrimaryCtxReleaseFn = Result (*)(Device device);
using CtxSetCurrentFn = Result (*)(Context context);
using MemGetInfoFn = Result (*)(std::size_t* free_bytes, std::size_t* total_bytes);
using MemAllocFn = Result (*)(DevicePtr* ptr, std::size_t bytes);
using MemFreeFn = Result (*)(DevicePtr ptr);
using MemcpyHtoDAsyncFn = Result (*)(DevicePtr dst, const void* src, std::size_t bytes, Stream stream);
using MemcpyDtoHAsyncFn = Result (*)(void* dst, DevicePtr src, std::size_t bytes, Stream stream);
using MemcpyDtoDAsyncFn = Result (*)(DevicePtr dst, DevicePtr src, std::size_t bytes, Stream stream);
using MemsetD8AsyncFn = Result (*)(DevicePtr dst, unsigned char value, std::size_t count, Stream stream);
using ModuleLoadDataExFn = Result (*)(Module* module, const void* image, unsigned option_count, int* options, void** option_values);
using ModuleUnloadFn = Result (*)(Module module);
using ModuleGetFunctionFn = Result (*)(Function* function, Module module, const char* name);
using LaunchKernelFn = Result (*)(Function function, unsigned grid_x, unsigned grid_y, unsigned grid_z, unsigned block_x, unsigned block_y, unsigned block_z,
                                  unsigned shared_bytes, Stream stream, void** kernel_params, void** extra);
using StreamCreateFn = Result (*)(Stream* stream, unsigned flags);
using StreamDestroyFn = Result (*)(Stream stream);
using StreamSynchronizeFn = Result (*)(Stream stream);
using GetErrorNameFn = Result (*)(Result error, const char** name);
using StreamBeginCaptureFn = Result (*)(Stream stream, int mode);
using StreamEndCaptureFn = Result (*)(Stream stream, Graph* graph);
using GraphInstantiateWithFlagsFn = Result (*)(GraphExec* exec, Graph graph, unsigned long long flags);
using GraphLaunchFn = Result (*)(GraphExec exec, Stream stream);
using GraphExecDestroyFn = Result (*)(GraphExec exec);
using GraphDestroyFn = Result (*)(Graph graph);
}  // namespace cuda

// ---------------------------------------------------------------------------------------------------------------
// Shared by device.cpp, device_hip.cpp and device_cuda.cpp.
namespace detail {

/** A runtime library loaded with dlopen, kept for the life of the process (see device.cpp for why it is never closed). */
struct Library {
  void* handle = nullptr;
  std::string path;  // the name that loaded
};

/**
 * Loads the first of `candidates` that dlopen accepts, or only `$override_env` when that variable is set. On failure
 * the result is Status::NoRuntime and names every file tried, why the most telling one failed, and what to do (`hint`).
 */
Result load_library(const char* what, const char* override_env, const std::vector<std::string>& candidates, const char* hint, Library* out);

/** `dlsym(library, name)`, or null. */
void* find_symbol(const Library& library, const char* name);

/** The targets with a code object in `directory`: `halo_kernels.<target>.<extension>`, sorted. */
std::vector<std::string> code_targets(const std::string& directory, const char* extension);

/** Reads a whole code object file; `nul_terminate` for PTX text (cuModuleLoadData wants a C string). */
Result read_code_object(const std::string& path, bool nul_terminate, std::vector<char>* out);

/** A number of bytes as "268435456 bytes". */
std::string bytes_text(std::size_t bytes);

/** The entry points device.cpp dispatches to. On failure `known` gets what was learnt before it (name, the device's
 *  own architecture, memory, targets), so that probe can report it. */
Result open_hip(const CodeObjects& code, std::unique_ptr<Device>* out, DeviceInfo* known);
Result open_cuda(const CodeObjects& code, std::unique_ptr<Device>* out, DeviceInfo* known);

}  // namespace detail
}  // namespace halo_gpu

#endif
