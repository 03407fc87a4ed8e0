// kernels_neon_dotprod.cpp: the NEON kernels built with +dotprod (vdotq_s32); called only when HWCAP_ASIMDDP is set.
#if defined(__aarch64__)
#if !defined(__ARM_FEATURE_DOTPROD)
#error "kernels_neon_dotprod.cpp must be compiled with -march=armv8.2-a+dotprod (or a -mcpu that has it)"
#endif
#define HALO_NEON_TABLE halo_kernels_neon_dotprod
#define HALO_NEON_NAME "neondotprod"
#include "kernels_neon.inc"
#endif
