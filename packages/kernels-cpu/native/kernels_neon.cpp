// kernels_neon.cpp: AArch64 ASIMD kernels without dotprod (vmull_s8 + vpadalq_s16); every ARMv8-A CPU runs them.
#if defined(__aarch64__)
#define HALO_NEON_TABLE halo_kernels_neon
#define HALO_NEON_NAME "neon"
#include "kernels_neon.inc"
#endif
