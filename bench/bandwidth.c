/* bandwidth.c: DRAM read bandwidth (read-reduce over 1 GiB, 32 independent partial sums, huge pages advised, software
 * prefetch 2 KB ahead — as halo's kernels stream their weights), median of 5, as GB/s. Without the huge pages and the
 * prefetch it read 19-20 GB/s on the AMX Xeon VM where halo's kernels streamed 28-32 (with both: 32-33).
 * Build and run through bench/bandwidth.mjs: gcc -O3 -march=native -fopenmp bandwidth.c -o bandwidth; ./bandwidth <threads>. */
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define BYTES (1ull << 30)
#define RUNS 5

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int compare(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}

int main(int argc, char** argv) {
  int threads = argc > 1 ? atoi(argv[1]) : 2;
  omp_set_num_threads(threads);
  size_t n = BYTES / sizeof(uint64_t);
  uint64_t* data = aligned_alloc(4096, BYTES);
  if (!data) return 1;
  madvise(data, BYTES, MADV_HUGEPAGE); /* advice only: a kernel without THP ignores it */
#pragma omp parallel for schedule(static)
  for (size_t i = 0; i < n; i++) data[i] = i * 0x9e3779b97f4a7c15ull;  /* first touch by the reading thread */
  double results[RUNS];
  uint64_t sink = 0;
  for (int run = 0; run < RUNS; run++) {
    double t0 = now();
    uint64_t total = 0;
#pragma omp parallel for schedule(static) reduction(+ : total)
    for (size_t block = 0; block < n / 32; block++) {
      for (int l = 0; l < 4; l++) __builtin_prefetch((const char*)(data + block * 32) + 2048 + 64 * l, 0, 3);
      uint64_t s[32];
      for (int j = 0; j < 32; j++) s[j] = data[block * 32 + j];
      uint64_t acc = 0;
      for (int j = 0; j < 32; j++) acc ^= s[j];
      total += acc;
    }
    double t1 = now();
    sink += total;
    results[run] = BYTES / (t1 - t0) / 1e9;
  }
  qsort(results, RUNS, sizeof(double), compare);
  printf("{\"threads\":%d,\"readGBps\":%.2f,\"minGBps\":%.2f,\"maxGBps\":%.2f,\"sink\":%llu}\n", threads, results[RUNS / 2], results[0], results[RUNS - 1],
         (unsigned long long)(sink & 1));
  free(data);
  return 0;
}
