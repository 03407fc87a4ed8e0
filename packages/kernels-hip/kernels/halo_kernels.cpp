// halo_kernels.cpp: the one translation unit of halo's GPU kernels. Built three ways from this file:
//   HIP   clang++-19 -x hip --cuda-device-only -nogpuinc -nogpulib --offload-arch=gfx…  → halo_kernels.gfx….hsaco
//   CUDA  nvcc -x cu -cubin -arch=sm_80 / sm_90 (and -ptx for compute_80)            → .cubin / .ptx
//   EMU   any C++17 compiler, linked with kernels/emu/emu.cpp (tests and HALO_HIP_DEVICE=emulator)
// Always with contraction off (-ffp-contract=off / --fmad=false): a fused multiply-add rounds once where the twins
// (native/twins.cpp) round twice, and the emulator must match them bit for bit. Kernel names are the args struct
// names without `_args` (halo_matmul for halo_matmul_args), extern "C" so the runtimes find them by name.
#include "halo_gpu.h"
#include "halo_kernel_args.h"

#include "attention.kern.h"
#include "common.kern.h"
#include "embed.kern.h"
#include "lm_head.kern.h"
#include "matmul.kern.h"
#include "norm_quant.kern.h"
#include "rope_kv.kern.h"
#include "topk.kern.h"
