// bandwidth.kern.h: bench-only kernels of test/native/gpu_check.cpp (bench/gpu-check.sh) — never shipped, never part of
// kernels/halo_kernels.cpp. Written against kernels/halo_gpu.h like the real kernels, so the same file builds three ways:
//   CUDA  nvcc -cubin with the flags of scripts/nvcc-flags.txt (-I kernels)  → <bench code dir>/halo_kernels.sm_XX.cubin
//   HIP   clang++-19 -x hip … (as build-kernels.mjs does for the kernels)    → <bench code dir>/halo_kernels.gfxNNNN.hsaco
//   EMU   #included by gpu_check.cpp (plain C++): HALO_KERNEL registers them with the emulator
// (The device opens `<dir>/halo_kernels.<target>.*`, so the bench code object gets that name in a directory of its own.)
#ifndef HALO_BANDWIDTH_KERN_H
#define HALO_BANDWIDTH_KERN_H

#include "common.kern.h"

#define HALO_BENCH_THREADS 256
#define HALO_BENCH_UNROLL 4  // 16-byte loads in flight per thread and iteration

/**
 * Read bandwidth: every 16-byte vector of `data` is loaded exactly once by a grid-stride loop (thread g reads vectors
 * g, g + stride, …, HALO_BENCH_UNROLL of them in flight), the words are summed, and each wave writes its sum to
 * out[g / 32] so the loads cannot be dropped. grid (blocks), block HALO_BENCH_THREADS, stride = blocks · 256.
 */
struct halo_bench_read_args {
  const halo_u32x4* data;  // [vectors]
  int64_t vectors;
  int64_t stride;          // threads in the grid
  uint32_t* out;           // [stride / 32]
};

/** Launch overhead: a kernel that does nothing (grid 1, block 32). */
struct halo_bench_nop_args {
  int32_t unused;
};

HALO_KERNEL(halo_bench_read, halo_bench_read_args, HALO_BENCH_THREADS) {
  const int64_t id = static_cast<int64_t>(halo_block_x()) * HALO_BENCH_THREADS + halo_thread();
  const int64_t stride = args.stride;
  uint32_t sum = 0;
  int64_t i = id;
  for (; i + (HALO_BENCH_UNROLL - 1) * stride < args.vectors; i += HALO_BENCH_UNROLL * stride) {
    halo_u32x4 v[HALO_BENCH_UNROLL];
    HALO_UNROLL
    for (int u = 0; u < HALO_BENCH_UNROLL; u++) v[u] = halo_load_u32x4(args.data + i + u * stride);
    HALO_UNROLL
    for (int u = 0; u < HALO_BENCH_UNROLL; u++) sum += v[u].x + v[u].y + v[u].z + v[u].w;
  }
  for (; i < args.vectors; i += stride) {
    const halo_u32x4 v = halo_load_u32x4(args.data + i);
    sum += v.x + v.y + v.z + v.w;
  }
  // Unsigned butterfly (wrapping, unlike halo_wave_sum_i32's int32); every lane of the wave reaches it.
  for (unsigned mask = HALO_WAVE / 2; mask > 0; mask >>= 1) sum += halo_exchange_u32(sum, halo_lane() ^ mask);
  if (halo_lane() == 0) args.out[id / HALO_WAVE] = sum;
}

HALO_KERNEL(halo_bench_nop, halo_bench_nop_args, HALO_BENCH_THREADS) { (void)args; }

#endif
