// halo_gpu.h: the one portability layer halo's GPU kernels are written against. The same kernel source compiles as
// HIP device code (clang-19 -x hip, gfx10/11/12 in wave32), CUDA device code (nvcc, sm_80+, warp 32) and plain C++
// for the CPU emulator (kernels/emu/, used by tests only: blocks of fibers with real barriers and wave32 exchanges).
#ifndef HALO_GPU_H
#define HALO_GPU_H

#include <stdint.h>

/** Lanes per wave on every target built: gfx10+ compiled for wave32, NVIDIA warps, the emulator. */
#define HALO_WAVE 32

#if defined(__HIP__) && defined(__AMDGCN__)
#define HALO_GPU_HIP 1
#elif defined(__CUDACC__)
#define HALO_GPU_CUDA 1
#else
#define HALO_GPU_EMU 1
#endif

// ---------------------------------------------------------------------------------------------------------------
#if defined(HALO_GPU_HIP)
// clang -x hip --cuda-device-only -nogpuinc -nogpulib: no HIP headers, so the few attributes are declared here and
// everything else is a compiler builtin (no device-library calls).
#define __global__ __attribute__((global))
#define __device__ __attribute__((device))
#define __shared__ __attribute__((shared))
#define HALO_DEVICE static __device__ inline __attribute__((always_inline))
#define HALO_KERNEL(name, Args, threads) extern "C" __global__ __attribute__((amdgpu_flat_work_group_size(1, threads))) void name(const Args args)
#define HALO_SHARED(type, name, count) __shared__ type name[count]

HALO_DEVICE unsigned halo_thread() { return __builtin_amdgcn_workitem_id_x(); }
HALO_DEVICE unsigned halo_block_x() { return __builtin_amdgcn_workgroup_id_x(); }
HALO_DEVICE unsigned halo_block_y() { return __builtin_amdgcn_workgroup_id_y(); }
HALO_DEVICE unsigned halo_block_z() { return __builtin_amdgcn_workgroup_id_z(); }
HALO_DEVICE void halo_barrier() {
  __builtin_amdgcn_fence(__ATOMIC_RELEASE, "workgroup");
  __builtin_amdgcn_s_barrier();
  __builtin_amdgcn_fence(__ATOMIC_ACQUIRE, "workgroup");
}
/** Lane `src` (0…31) of this wave's `value`; every lane of the wave must call it. */
HALO_DEVICE uint32_t halo_exchange_u32(uint32_t value, unsigned src) {
  return static_cast<uint32_t>(__builtin_amdgcn_ds_bpermute(static_cast<int>(src << 2), static_cast<int>(value)));
}
HALO_DEVICE uint32_t halo_ballot(bool predicate) { return __builtin_amdgcn_ballot_w32(predicate); }
HALO_DEVICE float halo_bits_f32(uint32_t bits) { return __builtin_bit_cast(float, bits); }
HALO_DEVICE uint32_t halo_f32_bits(float value) { return __builtin_bit_cast(uint32_t, value); }
HALO_DEVICE float halo_f16_to_f32(uint16_t bits) { return static_cast<float>(__builtin_bit_cast(_Float16, bits)); }
HALO_DEVICE uint16_t halo_f32_to_f16(float value) { return __builtin_bit_cast(uint16_t, static_cast<_Float16>(value)); }
HALO_DEVICE float halo_expf(float x) { return __builtin_expf(x); }
HALO_DEVICE float halo_sqrtf(float x) { return __builtin_sqrtf(x); }
HALO_DEVICE float halo_rintf(float x) { return __builtin_rintf(x); }
HALO_DEVICE float halo_fabsf(float x) { return __builtin_fabsf(x); }
HALO_DEVICE bool halo_isnan(float x) { return __builtin_isnan(x); }
HALO_DEVICE bool halo_isinf(float x) { return __builtin_isinf(x); }
/** Σ of the four products of unsigned bytes of `u` (each 0…2: halo-g2 codes) and signed bytes of `s`, plus `acc`. */
HALO_DEVICE int32_t halo_dot4_u8i8(uint32_t u, int32_t s, int32_t acc) {
#if defined(__gfx1030__) || defined(__gfx1031__) || defined(__gfx1032__)
  return __builtin_amdgcn_sdot4(static_cast<int>(u), s, acc, false);
#else
  return __builtin_amdgcn_sudot4(false, static_cast<int>(u), true, s, acc, false);
#endif
}

// ---------------------------------------------------------------------------------------------------------------
#elif defined(HALO_GPU_CUDA)
#include <cuda_fp16.h>
#define HALO_DEVICE static __device__ __forceinline__
#define HALO_KERNEL(name, Args, threads) extern "C" __global__ void __launch_bounds__(threads) name(const Args args)
#define HALO_SHARED(type, name, count) __shared__ type name[count]

HALO_DEVICE unsigned halo_thread() { return threadIdx.x; }
HALO_DEVICE unsigned halo_block_x() { return blockIdx.x; }
HALO_DEVICE unsigned halo_block_y() { return blockIdx.y; }
HALO_DEVICE unsigned halo_block_z() { return blockIdx.z; }
HALO_DEVICE void halo_barrier() { __syncthreads(); }
HALO_DEVICE uint32_t halo_exchange_u32(uint32_t value, unsigned src) { return __shfl_sync(0xffffffffu, value, static_cast<int>(src)); }
HALO_DEVICE uint32_t halo_ballot(bool predicate) { return __ballot_sync(0xffffffffu, predicate); }
HALO_DEVICE float halo_bits_f32(uint32_t bits) { return __uint_as_float(bits); }
HALO_DEVICE uint32_t halo_f32_bits(float value) { return __float_as_uint(value); }
HALO_DEVICE float halo_f16_to_f32(uint16_t bits) { return __half2float(__ushort_as_half(bits)); }
HALO_DEVICE uint16_t halo_f32_to_f16(float value) { return __half_as_ushort(__float2half_rn(value)); }
HALO_DEVICE float halo_expf(float x) { return expf(x); }
HALO_DEVICE float halo_sqrtf(float x) { return __fsqrt_rn(x); }
HALO_DEVICE float halo_rintf(float x) { return rintf(x); }
HALO_DEVICE float halo_fabsf(float x) { return fabsf(x); }
HALO_DEVICE bool halo_isnan(float x) { return isnan(x); }
HALO_DEVICE bool halo_isinf(float x) { return isinf(x); }
HALO_DEVICE int32_t halo_dot4_u8i8(uint32_t u, int32_t s, int32_t acc) { return __dp4a(static_cast<int>(u), s, acc); }

// ---------------------------------------------------------------------------------------------------------------
#else  // HALO_GPU_EMU: plain C++; the emulator (kernels/emu/emu.h) runs each work-item as a fiber.
#include <cmath>
#include <cstring>
#include "emu/emu.h"
#define HALO_DEVICE static inline
// A kernel is registered by name with its block size and argument size; the emulated runtime launches it by name.
#define HALO_KERNEL(name, Args, threads)                                                                                                                    \
  static void name(const Args args);                                                                                                                        \
  static const ::halo_emu::KernelRegistration name##_registration(#name, threads, sizeof(Args), [](const void* p) { name(*static_cast<const Args*>(p)); }); \
  static void name(const Args args)
// One array per block: the emulator runs a block's fibers on one OS thread, blocks of one launch on several.
#define HALO_SHARED(type, name, count) static thread_local type name[count]

HALO_DEVICE unsigned halo_thread() { return ::halo_emu::thread_x(); }
HALO_DEVICE unsigned halo_block_x() { return ::halo_emu::block_x(); }
HALO_DEVICE unsigned halo_block_y() { return ::halo_emu::block_y(); }
HALO_DEVICE unsigned halo_block_z() { return ::halo_emu::block_z(); }
HALO_DEVICE void halo_barrier() { ::halo_emu::barrier(); }
HALO_DEVICE uint32_t halo_exchange_u32(uint32_t value, unsigned src) { return ::halo_emu::exchange_u32(value, src); }
HALO_DEVICE uint32_t halo_ballot(bool predicate) { return ::halo_emu::ballot(predicate); }
HALO_DEVICE float halo_bits_f32(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}
HALO_DEVICE uint32_t halo_f32_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}
HALO_DEVICE float halo_f16_to_f32(uint16_t bits) { return ::halo_emu::f16_to_f32(bits); }
HALO_DEVICE uint16_t halo_f32_to_f16(float value) { return ::halo_emu::f32_to_f16(value); }
HALO_DEVICE float halo_expf(float x) { return std::exp(x); }
HALO_DEVICE float halo_sqrtf(float x) { return std::sqrt(x); }
HALO_DEVICE float halo_rintf(float x) { return std::nearbyint(x); }
HALO_DEVICE float halo_fabsf(float x) { return std::fabs(x); }
HALO_DEVICE bool halo_isnan(float x) { return std::isnan(x); }
HALO_DEVICE bool halo_isinf(float x) { return std::isinf(x); }
HALO_DEVICE int32_t halo_dot4_u8i8(uint32_t u, int32_t s, int32_t acc) {
  for (int b = 0; b < 4; b++) acc += static_cast<int32_t>((u >> (8 * b)) & 0xffu) * static_cast<int8_t>(static_cast<uint32_t>(s) >> (8 * b));
  return acc;
}
#endif

// ---------------------------------------------------------------------------------------------------------------
// Common helpers over the primitives above (identical on every target, so the emulator checks them too).
HALO_DEVICE unsigned halo_lane() { return halo_thread() % HALO_WAVE; }
HALO_DEVICE unsigned halo_wave_index() { return halo_thread() / HALO_WAVE; }
HALO_DEVICE float halo_exchange_f32(float value, unsigned src) { return halo_bits_f32(halo_exchange_u32(halo_f32_bits(value), src)); }
HALO_DEVICE float halo_shfl_xor_f32(float value, unsigned mask) { return halo_exchange_f32(value, halo_lane() ^ mask); }
HALO_DEVICE int32_t halo_shfl_xor_i32(int32_t value, unsigned mask) {
  return static_cast<int32_t>(halo_exchange_u32(static_cast<uint32_t>(value), halo_lane() ^ mask));
}
/** bf16 bits widened to f32 (exact). */
HALO_DEVICE float halo_bf16_to_f32(uint16_t bits) { return halo_bits_f32(static_cast<uint32_t>(bits) << 16); }
/** Butterfly sum over the wave (masks 16, 8, 4, 2, 1): every lane gets the same total, in the same order on every target. */
HALO_DEVICE float halo_wave_sum_f32(float value) {
  for (unsigned mask = HALO_WAVE / 2; mask > 0; mask >>= 1) value += halo_shfl_xor_f32(value, mask);
  return value;
}
HALO_DEVICE int32_t halo_wave_sum_i32(int32_t value) {
  for (unsigned mask = HALO_WAVE / 2; mask > 0; mask >>= 1) value += halo_shfl_xor_i32(value, mask);
  return value;
}
HALO_DEVICE float halo_wave_max_f32(float value) {
  for (unsigned mask = HALO_WAVE / 2; mask > 0; mask >>= 1) {
    const float other = halo_shfl_xor_f32(value, mask);
    value = other > value ? other : value;
  }
  return value;
}

#endif
