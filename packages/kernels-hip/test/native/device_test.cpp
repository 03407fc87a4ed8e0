// device_test.cpp: open_device / probe_device and the HIP and CUDA devices as far as a machine allows.
//   Everywhere: device names, code object discovery, the "no runtime" branch of both runtimes through the
//   HALO_HIP_RUNTIME_LIBRARY / HALO_CUDA_DRIVER_LIBRARY overrides (a missing file, a file that is no library, a library
//   without the runtime's symbols), "auto" naming both reasons, and the Device contract on the emulator (alloc, fill,
//   upload, download, copy, launch, graph capture and replay, launch counting, bad arguments) with a test kernel.
//   With a HIP runtime installed (Debian: libamdhip64-5) and no AMD GPU: the "no device" branch with the real runtime;
//   on an AMD GPU instead: "no code for this architecture" for code objects that are not code. Without a runtime
//   this part says what it skipped; HALO_DEVICE_TEST_REQUIRE_HIP_RUNTIME=1 makes that a failure (CI installs it).
//   With HALO_DEVICE_TEST_CODE_DIR (code objects of device_test_kernel.cpp, see there) and a GPU: the same contract
//   check on the GPU through "auto"; HALO_DEVICE_TEST_REQUIRE_GPU=1 fails when no GPU opens.
// Exit status 0 when every check passed.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "device.h"
#include "device_test_kernel.cpp"

namespace {

using halo_gpu::Device;
using halo_gpu::DeviceInfo;
using halo_gpu::Result;
using halo_gpu::Status;

int failures = 0;
int skipped = 0;

void check(bool ok, const std::string& what) {
  if (ok) return;
  std::fprintf(stderr, "FAIL %s\n", what.c_str());
  failures++;
}

void skip(const std::string& what) {
  std::printf("SKIP %s\n", what.c_str());
  skipped++;
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

const char* status_name(Status status) {
  switch (status) {
    case Status::Ok: return "Ok";
    case Status::NoRuntime: return "NoRuntime";
    case Status::NoDevice: return "NoDevice";
    case Status::NoCodeForArch: return "NoCodeForArch";
    case Status::OutOfMemory: return "OutOfMemory";
    case Status::DeviceError: return "DeviceError";
    case Status::BadArgument: return "BadArgument";
  }
  return "?";
}

std::string describe(const Result& result) { return std::string(status_name(result.status)) + " \"" + result.message + "\""; }

void expect_status(const Result& result, Status want, const std::string& what) {
  check(result.status == want, what + ": want " + status_name(want) + ", got " + describe(result));
}

std::string join(const std::vector<std::string>& items) {
  std::string text;
  for (const std::string& item : items) text += (text.empty() ? "" : " ") + item;
  return text;
}

void write_file(const std::string& path, const std::string& content) {
  FILE* file = std::fopen(path.c_str(), "wb");
  if (file == nullptr || std::fwrite(content.data(), 1, content.size(), file) != content.size()) {
    std::fprintf(stderr, "FAIL cannot write %s\n", path.c_str());
    std::exit(1);
  }
  std::fclose(file);
}

/** A directory of code objects that are not code: discovery sees them, no runtime can load them. */
std::string make_fake_code_dir() {
  char pattern[] = "/tmp/halo-device-test-XXXXXX";
  const char* dir = mkdtemp(pattern);
  if (dir == nullptr) {
    std::fprintf(stderr, "FAIL mkdtemp\n");
    std::exit(1);
  }
  const std::string base = dir;
  for (const char* name : {"halo_kernels.gfx1151.hsaco", "halo_kernels.gfx1100.hsaco", "halo_kernels.sm_90.cubin", "halo_kernels.compute_80.ptx",
                           // not code objects of this package: another prefix, no target, another extension
                           "other.gfx1030.hsaco", "halo_kernels..hsaco", "halo_kernels.gfx1030.hsaco.bak", "manifest.json"}) {
    write_file(base + "/" + name, "not a code object\n");
  }
  return base;
}

void remove_dir(const std::string& dir) {
  for (const char* name : {"halo_kernels.gfx1151.hsaco", "halo_kernels.gfx1100.hsaco", "halo_kernels.sm_90.cubin", "halo_kernels.compute_80.ptx",
                           "other.gfx1030.hsaco", "halo_kernels..hsaco", "halo_kernels.gfx1030.hsaco.bak", "manifest.json"}) {
    unlink((dir + "/" + name).c_str());
  }
  rmdir(dir.c_str());
}

// ---------------------------------------------------------------- names and arguments

void check_names() {
  check(std::strcmp(halo_gpu::kind_name(halo_gpu::Kind::Hip), "hip") == 0, "kind_name(Hip)");
  check(std::strcmp(halo_gpu::kind_name(halo_gpu::Kind::Cuda), "cuda") == 0, "kind_name(Cuda)");
  check(std::strcmp(halo_gpu::kind_name(halo_gpu::Kind::Emulator), "emulator") == 0, "kind_name(Emulator)");
  std::unique_ptr<Device> device;
  Result result = halo_gpu::open_device("vulkan", {"/nonexistent"}, &device);
  expect_status(result, Status::BadArgument, "open_device(\"vulkan\")");
  check(!device, "open_device(\"vulkan\") leaves no device");
  check(contains(result.message, "vulkan") && contains(result.message, "auto, hip, cuda or emulator"), "unknown device names the choices: " + result.message);
}

// ---------------------------------------------------------------- no runtime (overrides)

void check_no_runtime(const std::string& code_dir) {
  const std::string missing = code_dir + "/missing/libamdhip64.so";
  setenv("HALO_HIP_RUNTIME_LIBRARY", missing.c_str(), 1);
  DeviceInfo info;
  Result result = halo_gpu::probe_device("hip", {code_dir}, &info);
  expect_status(result, Status::NoRuntime, "hip with a missing runtime file");
  check(contains(result.message, missing) && contains(result.message, "HALO_HIP_RUNTIME_LIBRARY"),
        "hip no-runtime message names the file and the override: " + result.message);
  check(info.kind == halo_gpu::Kind::Hip, "hip no-runtime probe reports kind hip");
  check(join(info.targets) == "gfx1100 gfx1151", "hip targets from the directory: want \"gfx1100 gfx1151\", got \"" + join(info.targets) + "\"");
  std::unique_ptr<Device> device;
  expect_status(halo_gpu::open_device("hip", {code_dir}, &device), Status::NoRuntime, "open_device(hip) with a missing runtime");
  check(!device, "a failed open leaves no device");

  // A file that exists but is no shared library: dlopen's own reason, not "not found" alone.
  const std::string not_library = code_dir + "/halo_kernels.gfx1151.hsaco";
  setenv("HALO_HIP_RUNTIME_LIBRARY", not_library.c_str(), 1);
  result = halo_gpu::probe_device("hip", {code_dir}, &info);
  expect_status(result, Status::NoRuntime, "hip with a runtime file that is no library");
  check(contains(result.message, not_library + " (") && (contains(result.message, "ELF") || contains(result.message, "too short")),
        "hip no-library message carries dlopen's reason: " + result.message);

  // A real library without the runtime's symbols.
  setenv("HALO_HIP_RUNTIME_LIBRARY", "libm.so.6", 1);
  result = halo_gpu::probe_device("hip", {code_dir}, &info);
  expect_status(result, Status::NoRuntime, "hip with libm as the runtime");
  check(contains(result.message, "libm.so.6 lacks hipInit") && contains(result.message, "hipModuleLaunchKernel"),
        "hip missing symbols are named: " + result.message);
  setenv("HALO_CUDA_DRIVER_LIBRARY", "libm.so.6", 1);
  result = halo_gpu::probe_device("cuda", {code_dir}, &info);
  expect_status(result, Status::NoRuntime, "cuda with libm as the driver");
  check(contains(result.message, "libm.so.6 lacks cuInit") && contains(result.message, "cuLaunchKernel"), "cuda missing symbols are named: " + result.message);

  const std::string missing_cuda = code_dir + "/missing/libcuda.so.1";
  setenv("HALO_CUDA_DRIVER_LIBRARY", missing_cuda.c_str(), 1);
  result = halo_gpu::probe_device("cuda", {code_dir}, &info);
  expect_status(result, Status::NoRuntime, "cuda with a missing driver file");
  check(contains(result.message, missing_cuda) && contains(result.message, "HALO_CUDA_DRIVER_LIBRARY"),
        "cuda no-runtime message names the file and the override: " + result.message);
  check(info.kind == halo_gpu::Kind::Cuda, "cuda no-runtime probe reports kind cuda");
  check(join(info.targets) == "sm_90 compute_80", "cuda targets from the directory: want \"sm_90 compute_80\", got \"" + join(info.targets) + "\"");

  // auto: both reasons, and the targets of both.
  setenv("HALO_HIP_RUNTIME_LIBRARY", missing.c_str(), 1);
  result = halo_gpu::probe_device("auto", {code_dir}, &info);
  expect_status(result, Status::NoRuntime, "auto with neither runtime");
  check(contains(result.message, "HIP: ") && contains(result.message, missing) && contains(result.message, "CUDA: ") && contains(result.message, missing_cuda),
        "auto names both reasons: " + result.message);
  check(join(info.targets) == "gfx1100 gfx1151 sm_90 compute_80", "auto lists every target: got \"" + join(info.targets) + "\"");
  unsetenv("HALO_HIP_RUNTIME_LIBRARY");
  unsetenv("HALO_CUDA_DRIVER_LIBRARY");
}

// ---------------------------------------------------------------- the real HIP runtime, if installed

void check_hip_runtime(const std::string& code_dir) {
  DeviceInfo info;
  Result result = halo_gpu::probe_device("hip", {code_dir}, &info);
  if (result.status == Status::NoRuntime) {
    if (std::getenv("HALO_DEVICE_TEST_REQUIRE_HIP_RUNTIME") != nullptr) {
      check(false, "HALO_DEVICE_TEST_REQUIRE_HIP_RUNTIME is set but no HIP runtime loads: " + result.message);
    } else {
      skip("the HIP runtime's no-device branch: no libamdhip64 here (Debian: apt-get install libamdhip64-5) — " + result.message);
    }
    return;
  }
  if (result.status == Status::NoDevice) {
    // hipErrorNoDevice from hipInit or hipGetDeviceCount, or a count of 0.
    check(contains(result.message, "libamdhip64") && (contains(result.message, "hipErrorNoDevice") || contains(result.message, "0 devices")),
          "hip no-device message names the runtime and its answer: " + result.message);
    check(contains(result.message, "/dev/kfd"), "hip no-device message says what to check: " + result.message);
    check(info.kind == halo_gpu::Kind::Hip && info.name.empty() && join(info.targets) == "gfx1100 gfx1151", "hip no-device probe info");
    std::printf("ok   real HIP runtime, no GPU: %s\n", result.message.c_str());
    return;
  }
  // An AMD GPU is present: the fake code objects must not load, and the message lists what was tried.
  expect_status(result, Status::NoCodeForArch, "hip with a GPU and code objects that are not code");
  check(contains(result.message, "gfx1100: ") && contains(result.message, "gfx1151: ") && !info.name.empty(),
        "hip no-code message lists each target: " + result.message);
  std::printf("ok   real HIP runtime with a GPU (%s, %s): %s\n", info.name.c_str(), info.arch.c_str(), result.message.c_str());
}

void check_cuda_runtime(const std::string& code_dir) {
  DeviceInfo info;
  Result result = halo_gpu::probe_device("cuda", {code_dir}, &info);
  if (result.status == Status::NoRuntime) {
    skip("the CUDA driver's branches past loading: no libcuda here — " + result.message);
    return;
  }
  if (result.status == Status::NoDevice) {
    check(contains(result.message, "libcuda"), "cuda no-device message names the driver: " + result.message);
    std::printf("ok   real CUDA driver, no GPU: %s\n", result.message.c_str());
    return;
  }
  expect_status(result, Status::NoCodeForArch, "cuda with a GPU and code objects that are not code");
  check(contains(result.message, "sm_") && !info.name.empty() && contains(info.arch, "sm_"),
        "cuda no-code message names the GPU's capability: " + result.message);
  std::printf("ok   real CUDA driver with a GPU (%s, %s): %s\n", info.name.c_str(), info.arch.c_str(), result.message.c_str());
}

// ---------------------------------------------------------------- the Device contract, on any device with the test kernel

std::vector<float> download_floats(Device& device, const void* src, std::size_t count, const std::string& what) {
  std::vector<float> out(count, -12345.0f);
  expect_status(device.download(out.data(), src, count * sizeof(float)), Status::Ok, what + ": download");
  return out;
}

bool equal_floats(const std::vector<float>& got, const std::vector<float>& want) {
  return got.size() == want.size() && std::memcmp(got.data(), want.data(), got.size() * sizeof(float)) == 0;
}

void scale_add(std::vector<float>* values, float add, int times) {
  for (int t = 0; t < times; t++)
    for (float& v : *values) v = v * 2.0f + add;
}

void check_contract(Device& device, const std::string& label) {
  const std::string tag = label + " (" + halo_gpu::kind_name(device.info().kind) + ", " + device.info().arch + ")";
  std::size_t free_bytes = 0, total_bytes = 0;
  expect_status(device.memory(&free_bytes, &total_bytes), Status::Ok, tag + ": memory");
  check(total_bytes > 0 && free_bytes <= total_bytes, tag + ": memory free ≤ total, total > 0");

  halo_gpu::KernelHandle kernel = nullptr, missing = nullptr;
  expect_status(device.kernel("halo_device_test_scale_add", &kernel), Status::Ok, tag + ": kernel");
  halo_gpu::KernelHandle again = nullptr;
  check(device.kernel("halo_device_test_scale_add", &again).ok() && again == kernel, tag + ": the same name gives the same handle");
  Result result = device.kernel("halo_no_such_kernel", &missing);
  check(!result.ok() && missing == nullptr && contains(result.message, "halo_no_such_kernel"),
        tag + ": a missing kernel is refused by name: " + describe(result));
  if (kernel == nullptr) return;

  const uint32_t count = 1000;  // not a multiple of the block: the last block's tail is masked
  const std::size_t bytes = count * sizeof(float);
  halo_gpu::DevicePtr data = nullptr, other = nullptr;
  expect_status(device.alloc(bytes, &data), Status::Ok, tag + ": alloc");
  expect_status(device.alloc(bytes + 64, &other), Status::Ok, tag + ": alloc");
  if (data == nullptr || other == nullptr) return;

  expect_status(device.fill(data, 0, bytes), Status::Ok, tag + ": fill 0");
  check(equal_floats(download_floats(device, data, count, tag), std::vector<float>(count, 0.0f)), tag + ": fill 0 then download gives zeros");
  expect_status(device.fill(other, 0x3f, bytes + 64), Status::Ok, tag + ": fill 0x3f");
  float pattern;
  const uint32_t pattern_bits = 0x3f3f3f3fu;
  std::memcpy(&pattern, &pattern_bits, 4);
  check(equal_floats(download_floats(device, other, count, tag), std::vector<float>(count, pattern)), tag + ": fill 0x3f sets every byte");

  std::vector<float> want(count);
  for (uint32_t i = 0; i < count; i++) want[i] = static_cast<float>(static_cast<int>(i % 97) - 48) * 0.25f;
  expect_status(device.upload(data, want.data(), bytes), Status::Ok, tag + ": upload");
  check(equal_floats(download_floats(device, data, count, tag), want), tag + ": upload then download round trips");

  const halo_device_test_args args{static_cast<float*>(data), count, 1.5f};
  const halo_gpu::Dim3 grid{(count + HALO_DEVICE_TEST_THREADS - 1) / HALO_DEVICE_TEST_THREADS, 1, 1}, block{HALO_DEVICE_TEST_THREADS, 1, 1};
  const std::uint64_t launches_before = device.launches;
  expect_status(device.launch(kernel, grid, block, &args, sizeof(args)), Status::Ok, tag + ": launch");
  expect_status(device.synchronize(), Status::Ok, tag + ": synchronize");
  scale_add(&want, 1.5f, 1);
  check(equal_floats(download_floats(device, data, count, tag), want), tag + ": the kernel ran on every element once");
  check(device.launches == launches_before + 1, tag + ": one launch counted, got " + std::to_string(device.launches - launches_before));

  expect_status(device.copy(other, data, bytes), Status::Ok, tag + ": copy");
  check(equal_floats(download_floats(device, other, count, tag), want), tag + ": device to device copy");

  // Bad arguments are refused before the runtime sees them, and count nothing.
  expect_status(device.launch(nullptr, grid, block, &args, sizeof(args)), Status::BadArgument, tag + ": launch of no kernel");
  expect_status(device.launch(kernel, {0, 1, 1}, block, &args, sizeof(args)), Status::BadArgument, tag + ": launch with an empty grid");
  expect_status(device.launch(kernel, grid, block, nullptr, sizeof(args)), Status::BadArgument, tag + ": launch without arguments");
  check(device.launches == launches_before + 1, tag + ": refused launches count nothing");

  // More memory than any device has: OutOfMemory, the size in the message, and the device still works.
  halo_gpu::DevicePtr huge = nullptr;
  const std::size_t huge_bytes = std::size_t{1} << 60;
  result = device.alloc(huge_bytes, &huge);
  expect_status(result, Status::OutOfMemory, tag + ": alloc of 2^60 bytes");
  check(huge == nullptr && contains(result.message, std::to_string(huge_bytes)), tag + ": the failed alloc names its size: " + result.message);

  halo_gpu::DevicePtr empty = nullptr;
  expect_status(device.alloc(0, &empty), Status::BadArgument, tag + ": alloc of 0 bytes (CUDA refuses them, HIP returns null)");

  if (device.graphs()) {
    expect_status(device.begin_capture(), Status::Ok, tag + ": begin_capture");
    expect_status(device.begin_capture(), Status::BadArgument, tag + ": a second begin_capture");
    expect_status(device.launch(kernel, grid, block, &args, sizeof(args)), Status::Ok, tag + ": captured launch 1");
    expect_status(device.launch(kernel, grid, block, &args, sizeof(args)), Status::Ok, tag + ": captured launch 2");
    const std::vector<float> host(count, 7.0f);
    // Only launches are captured: a host copy would replay a stale host pointer.
    expect_status(device.upload(data, host.data(), bytes), Status::BadArgument, tag + ": upload during capture");
    expect_status(device.copy(other, data, bytes), Status::BadArgument, tag + ": copy during capture");
    expect_status(device.fill(other, 0, bytes), Status::BadArgument, tag + ": fill during capture");
    int graph = -1;
    expect_status(device.end_capture(&graph), Status::Ok, tag + ": end_capture");
    check(graph >= 0, tag + ": a graph id");
    check(device.launches == launches_before + 1, tag + ": captured launches are not counted (they did not run)");
    check(equal_floats(download_floats(device, data, count, tag), want), tag + ": capturing ran nothing");
    expect_status(device.replay(graph), Status::Ok, tag + ": replay 1");
    expect_status(device.replay(graph), Status::Ok, tag + ": replay 2");
    expect_status(device.synchronize(), Status::Ok, tag + ": synchronize after replays");
    scale_add(&want, 1.5f, 4);
    check(equal_floats(download_floats(device, data, count, tag), want), tag + ": two replays of two launches ran four");
    check(device.launches == launches_before + 5, tag + ": replays count their kernels, got " + std::to_string(device.launches - launches_before));
    expect_status(device.replay(graph + 1), Status::BadArgument, tag + ": replay of an unknown graph");
    device.drop_graphs();
    expect_status(device.replay(graph), Status::BadArgument, tag + ": replay after drop_graphs");
    int no_graph = -1;
    expect_status(device.end_capture(&no_graph), Status::BadArgument, tag + ": end_capture without a capture");
  } else {
    expect_status(device.begin_capture(), Status::BadArgument, tag + ": begin_capture without graphs");
  }
  device.release(data);
  device.release(other);
  device.release(nullptr);  // no-op
  std::printf("ok   device contract on %s: %s, %zu of %zu bytes free, graphs %s\n", tag.c_str(), device.info().name.c_str(), free_bytes, total_bytes,
              device.graphs() ? "yes" : "no");
}

void check_emulator() {
  std::unique_ptr<Device> device;
  Result result = halo_gpu::open_device("emulator", {""}, &device);
  expect_status(result, Status::Ok, "open_device(emulator)");
  if (!device) return;
  check(device->info().kind == halo_gpu::Kind::Emulator, "emulator kind");
  check_contract(*device, "emulator");
}

void check_gpu_contract() {
  const char* dir = std::getenv("HALO_DEVICE_TEST_CODE_DIR");
  const bool required = std::getenv("HALO_DEVICE_TEST_REQUIRE_GPU") != nullptr;
  if (dir == nullptr || dir[0] == '\0') {
    check(!required, "HALO_DEVICE_TEST_REQUIRE_GPU is set without HALO_DEVICE_TEST_CODE_DIR");
    skip("the device contract on a GPU: set HALO_DEVICE_TEST_CODE_DIR to code objects of test/native/device_test_kernel.cpp");
    return;
  }
  std::unique_ptr<Device> device;
  Result result = halo_gpu::open_device("auto", {dir}, &device);
  if (!result.ok()) {
    if (required) {
      check(false, "HALO_DEVICE_TEST_REQUIRE_GPU is set but no GPU opens: " + describe(result));
    } else {
      skip("the device contract on a GPU: " + describe(result));
    }
    return;
  }
  check_contract(*device, "gpu");
}

}  // namespace

int main() {
  const std::string code_dir = make_fake_code_dir();
  check_names();
  check_no_runtime(code_dir);
  check_hip_runtime(code_dir);
  check_cuda_runtime(code_dir);
  check_emulator();
  check_gpu_contract();
  remove_dir(code_dir);
  if (failures > 0) {
    std::fprintf(stderr, "device_test: %d failure(s)\n", failures);
    return 1;
  }
  std::printf("device_test: all checks passed (%d part(s) skipped)\n", skipped);
  return 0;
}
