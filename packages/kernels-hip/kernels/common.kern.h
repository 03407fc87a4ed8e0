// common.kern.h: helpers the kernel bodies share — 16-byte vector loads, float constants without headers, an unroll
// pragma every compiler accepts, and the block-wide sum / max in a fixed order (the twins in native/twins.cpp repeat
// that order). Every .kern.h includes what it uses, so halo_kernels.cpp may list them in any order.
#ifndef HALO_COMMON_KERN_H
#define HALO_COMMON_KERN_H

#include "halo_gpu.h"
#include "halo_kernel_args.h"

// Every kernel is written for the one block size its HALO_KERNEL line declares (halo_gpu.h has no blockDim query), and
// the host launches exactly that many threads: the per-block reductions below index the waves of a full block.
#if defined(HALO_GPU_EMU)
#define HALO_UNROLL
#else
#define HALO_UNROLL _Pragma("unroll")
#endif

/** 16 bytes loaded with one instruction (global_load_b128 / ld.global.v4.u32); the address must be 16-byte aligned. */
struct alignas(16) halo_u32x4 {
  uint32_t x, y, z, w;
};

HALO_DEVICE halo_u32x4 halo_load_u32x4(const void* address) {
#if defined(HALO_GPU_EMU)
  halo_u32x4 value;
  std::memcpy(&value, address, sizeof value);
  return value;
#else
  return *static_cast<const halo_u32x4*>(address);
#endif
}

/** +inf, and the largest finite float (FLT_MAX), without <cmath> / <cfloat> (the HIP build has no headers). */
HALO_DEVICE float halo_inf() { return halo_bits_f32(0x7f800000u); }
HALO_DEVICE float halo_flt_max() { return halo_bits_f32(0x7f7fffffu); }
HALO_DEVICE int32_t halo_min_i32(int32_t a, int32_t b) { return a < b ? a : b; }

/** Waves in a block of `threads`. */
#define HALO_WAVES(threads) ((threads) / HALO_WAVE)

/**
 * Block-wide sum of `value` over a HALO_ROW_THREADS block: the butterfly within each wave, then waves 0…7 added in
 * order from shared memory. Every thread of the block must call it (two barriers); every thread gets the total.
 * `slots` is a [HALO_WAVES(HALO_ROW_THREADS)] shared array.
 */
HALO_DEVICE float halo_block_sum_f32(float value, float* slots) {
  value = halo_wave_sum_f32(value);
  if (halo_lane() == 0) slots[halo_wave_index()] = value;
  halo_barrier();
  float total = slots[0];
  for (unsigned w = 1; w < HALO_WAVES(HALO_ROW_THREADS); w++) total += slots[w];
  halo_barrier();  // the slots may be written again by the next reduction
  return total;
}

/** Block-wide maximum, the same shape as halo_block_sum_f32 (`other > value ? other : value` at every step). */
HALO_DEVICE float halo_block_max_f32(float value, float* slots) {
  value = halo_wave_max_f32(value);
  if (halo_lane() == 0) slots[halo_wave_index()] = value;
  halo_barrier();
  float best = slots[0];
  for (unsigned w = 1; w < HALO_WAVES(HALO_ROW_THREADS); w++) best = slots[w] > best ? slots[w] : best;
  halo_barrier();
  return best;
}

#endif
