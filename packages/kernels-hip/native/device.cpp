// device.cpp: which device opens — "hip" (libamdhip64), "cuda" (libcuda), "emulator", or "auto" (HIP, then CUDA) —
// and the helpers the HIP and CUDA devices share: loading a runtime library by name, listing code objects.
#include <dirent.h>
#include <dlfcn.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <new>
#include <unordered_map>

#include "device.h"
#include "device_emu.h"
#include "gpu_runtime_decls.h"

namespace halo_gpu {

const char* kind_name(Kind kind) {
  switch (kind) {
    case Kind::Hip: return "hip";
    case Kind::Cuda: return "cuda";
    case Kind::Emulator: return "emulator";
  }
  return "unknown";
}

namespace detail {

namespace {

// dlopen results by library name: a runtime that loaded once stays loaded. Runtimes are never dlclose'd: the HIP and
// CUDA runtimes start threads and register exit handlers, and unloading them under a live process is not supported.
// Failures are not remembered, so that a runtime installed (or an override set) later is found by the next probe.
std::mutex library_mutex;
std::unordered_map<std::string, void*>& loaded_libraries() {
  static auto* libraries = new std::unordered_map<std::string, void*>();  // never destroyed: outlives exit-time users
  return *libraries;
}

bool is_missing_file(const char* error) { return error != nullptr && std::strstr(error, "No such file or directory") != nullptr; }

}  // namespace

Result load_library(const char* what, const char* override_env, const std::vector<std::string>& candidates, const char* hint, Library* out) {
  std::vector<std::string> names = candidates;
  const char* override_path = std::getenv(override_env);
  const bool overridden = override_path != nullptr && override_path[0] != '\0';
  if (overridden) names = {override_path};
  std::lock_guard<std::mutex> lock(library_mutex);
  std::string tried, telling_error;
  for (const std::string& name : names) {
    auto found = loaded_libraries().find(name);
    if (found != loaded_libraries().end()) {
      *out = {found->second, name};
      return Result::success();
    }
    void* handle = dlopen(name.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (handle != nullptr) {
      loaded_libraries().emplace(name, handle);
      *out = {handle, name};
      return Result::success();
    }
    const char* error = dlerror();
    if (!tried.empty()) tried += ", ";
    tried += name;
    // A file that exists but does not load (a missing dependency, the wrong architecture) says more than "not found".
    if (telling_error.empty() && error != nullptr && !is_missing_file(error)) telling_error = error;
    if (telling_error.empty() && overridden && error != nullptr) telling_error = error;
  }
  std::string message =
      std::string(what) + (telling_error.empty() || is_missing_file(telling_error.c_str()) ? " not found" : " does not load") + ": tried " + tried;
  if (!telling_error.empty()) message += " (" + telling_error + ")";
  message += overridden ? std::string(" — ") + override_env + " names it; point it at the library or unset it" : std::string(". ") + hint;
  return Result::failure(Status::NoRuntime, message);
}

void* find_symbol(const Library& library, const char* name) { return library.handle != nullptr ? dlsym(library.handle, name) : nullptr; }

std::vector<std::string> code_targets(const std::string& directory, const char* extension) {
  std::vector<std::string> targets;
  DIR* dir = opendir(directory.c_str());
  if (dir == nullptr) return targets;
  const std::string prefix = "halo_kernels.", suffix = std::string(".") + extension;
  while (const dirent* entry = readdir(dir)) {
    const std::string name = entry->d_name;
    if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0) continue;
    if (name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) continue;
    targets.push_back(name.substr(prefix.size(), name.size() - prefix.size() - suffix.size()));
  }
  closedir(dir);
  std::sort(targets.begin(), targets.end());
  return targets;
}

Result read_code_object(const std::string& path, bool nul_terminate, std::vector<char>* out) {
  out->clear();
  FILE* file = std::fopen(path.c_str(), "rb");
  if (file == nullptr) return Result::failure(Status::NoCodeForArch, "cannot read " + path + ": " + std::strerror(errno));
  char chunk[65536];
  std::size_t got;
  while ((got = std::fread(chunk, 1, sizeof(chunk), file)) > 0) out->insert(out->end(), chunk, chunk + got);
  const bool failed = std::ferror(file) != 0;
  std::fclose(file);
  if (failed) return Result::failure(Status::NoCodeForArch, "cannot read " + path);
  if (out->empty()) return Result::failure(Status::NoCodeForArch, path + " is empty");
  if (nul_terminate) out->push_back('\0');
  return Result::success();
}

std::string bytes_text(std::size_t bytes) { return std::to_string(bytes) + " bytes"; }

}  // namespace detail

namespace {

// When "auto" finds neither runtime usable, the status of the one that got further: a GPU that is there but cannot
// run (no code for its architecture, a runtime error) says more than "no device", which says more than "no runtime".
int status_rank(Status status) {
  switch (status) {
    case Status::NoRuntime: return 0;
    case Status::NoDevice: return 1;
    default: return 2;
  }
}

Result open_known(const std::string& which, const CodeObjects& code, std::unique_ptr<Device>* out, DeviceInfo* known) {
  if (which == "hip") return detail::open_hip(code, out, known);
  if (which == "cuda") return detail::open_cuda(code, out, known);
  if (which == "emulator") return open_emulator(code, out);
  if (which == "auto" || which.empty()) {
    DeviceInfo hip_known, cuda_known;
    Result hip = detail::open_hip(code, out, &hip_known);
    if (hip.ok()) return hip;
    Result cuda = detail::open_cuda(code, out, &cuda_known);
    if (cuda.ok()) return cuda;
    const bool cuda_further = status_rank(cuda.status) > status_rank(hip.status);
    *known = cuda_further ? cuda_known : hip_known;
    std::vector<std::string> targets = hip_known.targets;
    targets.insert(targets.end(), cuda_known.targets.begin(), cuda_known.targets.end());
    known->targets = targets;
    return Result::failure(cuda_further ? cuda.status : hip.status, "no GPU runtime could run: HIP: " + hip.message + "; CUDA: " + cuda.message);
  }
  return Result::failure(Status::BadArgument, "unknown device \"" + which + "\": expected auto, hip, cuda or emulator");
}

}  // namespace

Result open_device(const std::string& which, const CodeObjects& code, std::unique_ptr<Device>* out) {
  out->reset();
  try {
    DeviceInfo known;
    Result result = open_known(which, code, out, &known);
    if (!result.ok()) out->reset();
    return result;
  } catch (const std::bad_alloc&) {  // host memory for a code object or a message: nothing escapes to the binding
    out->reset();
    return Result::failure(Status::OutOfMemory, "opening device \"" + which + "\": host memory exhausted");
  } catch (const std::exception& error) {
    out->reset();
    return Result::failure(Status::DeviceError, "opening device \"" + which + "\": " + error.what());
  }
}

Result probe_device(const std::string& which, const CodeObjects& code, DeviceInfo* info) {
  try {
    std::unique_ptr<Device> device;
    DeviceInfo known;
    Result result = open_known(which, code, &device, &known);
    if (result.ok() && device) {
      *info = device->info();
    } else {
      *info = known;
      if (result.ok()) result = Result::failure(Status::DeviceError, "device \"" + which + "\" opened nothing");
    }
    return result;
  } catch (const std::bad_alloc&) {
    return Result::failure(Status::OutOfMemory, "probing device \"" + which + "\": host memory exhausted");
  } catch (const std::exception& error) { return Result::failure(Status::DeviceError, "probing device \"" + which + "\": " + error.what()); }
}

}  // namespace halo_gpu
