// device_test_kernel.cpp: the one kernel device_test.cpp launches through a Device, written against halo_gpu.h like
// the real kernels: included by device_test.cpp for the emulator (HALO_KERNEL registers it), and compiled alone into
// `halo_kernels.<target>.{hsaco,cubin,ptx}` of a test directory to run the same check on a GPU:
//   clang++-19 -x hip --cuda-device-only --no-gpu-bundle-output -nogpuinc -nogpulib -O3 --offload-arch=gfx1151
//     -I kernels -o DIR/halo_kernels.gfx1151.hsaco test/native/device_test_kernel.cpp
//   nvcc -x cu -cubin -arch=sm_90 -I kernels -o DIR/halo_kernels.sm_90.cubin test/native/device_test_kernel.cpp
//   nvcc -x cu -ptx -arch=compute_80 -I kernels -o DIR/halo_kernels.compute_80.ptx test/native/device_test_kernel.cpp
// then HALO_DEVICE_TEST_CODE_DIR=DIR ./device_test.
#ifndef HALO_DEVICE_TEST_KERNEL_CPP
#define HALO_DEVICE_TEST_KERNEL_CPP

#include "halo_gpu.h"

#define HALO_DEVICE_TEST_THREADS 64

/** data[i] = data[i] · 2 + add for i < count. grid (⌈count / 64⌉), block 64. */
struct halo_device_test_args {
  float* data;  // [count]
  uint32_t count;
  float add;
};

HALO_KERNEL(halo_device_test_scale_add, halo_device_test_args, HALO_DEVICE_TEST_THREADS) {
  const uint32_t i = halo_block_x() * HALO_DEVICE_TEST_THREADS + halo_thread();
  if (i < args.count) args.data[i] = args.data[i] * 2.0f + args.add;
}

#endif
