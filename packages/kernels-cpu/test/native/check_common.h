// check_common.h: what the native check drivers share: a failure counter that stops after 25 reports and a seeded
// random source. Each driver includes it once, inside its own anonymous namespace, after defining HALO_CHECK_SEED.
#ifndef HALO_CHECK_COMMON_H
#define HALO_CHECK_COMMON_H

#ifndef HALO_CHECK_SEED
#error "define HALO_CHECK_SEED (the driver's random seed) before including check_common.h"
#endif

int failures = 0;
std::mt19937_64 rng(HALO_CHECK_SEED);

void fail(const std::string& what) {
  std::fprintf(stderr, "FAIL %s\n", what.c_str());
  if (++failures > 25) std::exit(1);
}

int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }

#endif
