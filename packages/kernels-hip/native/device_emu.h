// device_emu.h: the CPU emulator as a halo_gpu::Device (kernels/emu runs the launches; memory is host memory).
#ifndef HALO_GPU_DEVICE_EMU_H
#define HALO_GPU_DEVICE_EMU_H

#include <memory>
#include <string>
#include <vector>

#include "device.h"

namespace halo_gpu {

/**
 * Opens the emulated device. Its memory is host memory under a cap, `HALO_HIP_EMULATOR_MEMORY` bytes (decimal;
 * default 8 GiB), so out-of-memory paths are testable; a cap that is not a positive decimal number fails with
 * Status::BadArgument. `code` is only listed (info().targets): the emulator runs the kernels compiled into this
 * binary. Stricter than a GPU where that catches portable bugs: no 0-byte allocations (CUDA refuses them), every
 * copy range must lie inside one live allocation, device-to-device copies must not overlap, new allocations are
 * filled with 0xff bytes (f32/f16 NaN, int −1) instead of zeros, and only launches may happen during graph capture.
 * A release of an unknown pointer cannot return a status: the next synchronize() reports it (Status::BadArgument).
 */
Result open_emulator(const CodeObjects& code, std::unique_ptr<Device>* out);

/** The targets of `<directory>/halo_kernels.<target>.{hsaco,cubin,ptx}`, sorted, each once; empty if unreadable. */
std::vector<std::string> code_object_targets(const std::string& directory);

}  // namespace halo_gpu

#endif
