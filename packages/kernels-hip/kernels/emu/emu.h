// emu.h: the CPU emulator of halo's GPU kernels (tests and HALO_HIP_DEVICE=emulator). Each work-item is a fiber; a
// block's fibers run on one OS thread under a deterministic scheduler, so barriers, wave32 exchanges and ballots are
// real synchronisation points, and a divergent one (a thread that never arrives) is reported instead of hanging.
// halo_gpu.h's EMU branch is written against this API; kernels never call it directly.
//
// Writing kernels that run well here (and are correct on GPUs):
// - Every sync point (halo_barrier, an exchange / shfl / wave sum step, a ballot) is a fiber switch per thread,
//   ~10–20 ns, against ~1 ns for arithmetic: accumulate per lane over long loops and reduce once at the end, rather
//   than a wave sum per element.
// - Every thread of a block reaches every barrier: no `if (t >= n) return;` before one (guard the work instead); every
//   lane of a wave reaches every wave operation. The emulator reports a violation instead of hanging.
// - No spin-waits on another wave or block: a fiber runs until its next sync point, so a spin never yields.
// - HALO_SHARED arrays are per OS thread and outlive the block: they start with the previous block's contents.
// - Kernel frames live on 64 KiB stacks with a guard page: no large local arrays.
// - A block that deadlocks is abandoned mid-kernel: no objects with destructors (std::vector, std::string) in kernels.
#ifndef HALO_EMU_H
#define HALO_EMU_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <string>

namespace halo_emu {

// --- what a kernel sees (valid inside a kernel run by run(); outside one they return 0 / do nothing) -----------
/** This work-item's index in its block (block.y = block.z = 1, so x is the whole index). */
unsigned thread_x();
unsigned block_x();
unsigned block_y();
unsigned block_z();
/** Block barrier: returns once every thread of the block has called it; a thread that returns or waits elsewhere
 *  instead makes the launch fail (a real GPU would hang or misbehave). */
void barrier();
/** Wave32 exchange: every lane of this thread's wave (32 consecutive threads) must call it; returns the value
 *  lane `src % 32` passed (the modulo is what ds_bpermute and __shfl_sync do with an out-of-range lane). */
uint32_t exchange_u32(uint32_t value, unsigned src);
/** Wave32 ballot: bit i is lane i's predicate; every lane of the wave must call it. */
uint32_t ballot(bool predicate);

// --- IEEE binary16 <-> binary32, bit-exact with hardware conversions (and GCC's _Float16 casts) ---------------
// Inline: f16 KV caches and tables convert every element, and bit operations keep them independent of the
// caller's rounding mode (MXCSR / FPCR), as hardware conversions are.
/** Exact widening; a signalling NaN comes back quiet (quiet bit set, payload kept), as cvt instructions do. */
inline float f16_to_f32(uint16_t bits) {
  const uint32_t sign = static_cast<uint32_t>(bits & 0x8000u) << 16, exponent = (bits >> 10) & 0x1fu, mantissa = bits & 0x3ffu;
  uint32_t out;
  if (exponent == 0x1f) {
    out = sign | 0x7f800000u | (mantissa << 13) | (mantissa != 0 ? 0x400000u : 0u);
  } else if (exponent != 0) {
    out = sign | ((exponent + 112u) << 23) | (mantissa << 13);
  } else {
    // ±0 or a subnormal, mantissa · 2^−24: exact in f32 (a power-of-two scaling of an integer below 2^10).
    const float magnitude = static_cast<float>(mantissa) * 5.9604644775390625e-8f;
    memcpy(&out, &magnitude, 4);
    out |= sign;
  }
  float value;
  memcpy(&value, &out, 4);
  return value;
}

/** Round to nearest even; overflow to ±inf; subnormal results; NaN keeps its sign and payload's top bits, quiet. */
inline uint16_t f32_to_f16(float value) {
  uint32_t x;
  memcpy(&x, &value, 4);
  const uint16_t sign = static_cast<uint16_t>((x >> 16) & 0x8000u);
  x &= 0x7fffffffu;
  if (x > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u | (x >> 13 & 0x3ffu));  // NaN, made quiet
  if (x >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // ≥ 65520 (the tie above 65504 rounds to even: inf), inf
  if (x >= 0x38800000u) {
    // Normal: add just under half an f16 ulp plus the kept lsb (ties to even), drop 13 bits, rebias 127 → 15; a
    // mantissa carry moves into the exponent on its own.
    const uint32_t rounded = x + 0xfffu + ((x >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((rounded >> 13) - (112u << 10)));
  }
  if (x <= 0x33000000u) return sign;  // ≤ 2^−25: rounds to ±0 (2^−25 itself is the tie, to even 0)
  // Subnormal result: the 24-bit significand shifted right by 14…24 with round to nearest even (1024 = the smallest normal).
  const uint32_t shift = 126u - (x >> 23), significand = (x & 0x7fffffu) | 0x800000u;
  uint32_t quotient = significand >> shift;
  const uint32_t remainder = significand & ((1u << shift) - 1u), half = 1u << (shift - 1u);
  if (remainder > half || (remainder == half && (quotient & 1u) != 0)) quotient++;
  return static_cast<uint16_t>(sign | quotient);
}

// --- the kernel registry (filled by HALO_KERNEL's static registrations) --------------------------------------
struct KernelInfo {
  const char* name;
  unsigned threads;   // the largest block size the kernel is written for
  size_t args_bytes;  // sizeof its argument struct
  void (*entry)(const void* args);
};

/** One static object per kernel (HALO_KERNEL declares it); links itself into the registry at static initialisation. */
struct KernelRegistration {
  KernelRegistration(const char* name, unsigned threads, size_t args_bytes, void (*entry)(const void*));
  KernelInfo info;
  const KernelRegistration* next;
};

/** The registered kernel `name`, or null. */
const KernelInfo* find_kernel(const char* name);
/** Whether `kernel` points at a registered kernel's info (a launch handle check). */
bool is_registered(const void* kernel);

// --- launching ----------------------------------------------------------------------------------------------
struct Dim3 {
  unsigned x = 1, y = 1, z = 1;
};

/**
 * Runs every block of `grid` and returns when all are done. `args` (kernel.args_bytes bytes) is passed to every
 * work-item. Refused (false, `error` says why, nothing runs): grid with a zero or out-of-range dimension
 * (x < 2^31, y, z ≤ 65535 as on CUDA), block.x not a multiple of 32 or above kernel.threads, block.y or block.z ≠ 1,
 * a call from inside a kernel. A deadlock (a barrier, exchange or ballot that not every thread reaches) fails with
 * the kernel, the block and the first waiting threads named; later blocks are then skipped. Blocks may run on
 * several OS threads; results never depend on how many (blocks are independent, each block runs on one thread,
 * and its fibers always in the same order). Never aborts, never hangs unless a kernel loops forever.
 */
bool run(const KernelInfo& kernel, Dim3 grid, Dim3 block, const void* args, std::string* error);

/** run()'s shape checks alone (grid, block, kernel), for hosts that record launches to run later. */
bool check_launch(const KernelInfo& kernel, Dim3 grid, Dim3 block, std::string* error);

/** OS threads a launch may use: 0 = the default, min(2, hardware threads). Returns the number now in force. */
unsigned set_threads(unsigned threads);

/** Fiber context switches since the process started (every OS thread), for benchmarks. */
uint64_t switch_count();

}  // namespace halo_emu

#endif
