// emu_test.cpp: the CPU emulator's semantics (barriers with shared memory, wave32 exchange and ballot, deadlock
// detection, multi-block launches on 1 and 2 OS threads), its exact f16 conversions, and the emulated Device
// (bounds, faults, graphs, the memory cap). Small kernels written against halo_gpu.h, compiled as plain C++.
// Usage: emu_test [--f16-full] [--bench] [name …] (names select tests; --f16-full checks all 2^32 floats).
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cfenv>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "device_emu.h"
#include "emu/emu.h"
#include "halo_gpu.h"

namespace {

// ---------------------------------------------------------------------------------------------------------------
// Harness: every CHECK counts; a failure prints file:line and what was compared; any failure exits 1.
int g_checks = 0, g_failures = 0;

void fail(const char* file, int line, const std::string& what) {
  g_failures++;
  if (g_failures <= 50) std::fprintf(stderr, "%s:%d: FAIL %s\n", file, line, what.c_str());
}

template <typename T>
std::string text(const T& value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

#define CHECK(condition)                                                 \
  do {                                                                   \
    g_checks++;                                                          \
    if (!(condition)) fail(__FILE__, __LINE__, "CHECK(" #condition ")"); \
  } while (0)

#define CHECK_EQ(actual, expected)                                                                                         \
  do {                                                                                                                     \
    g_checks++;                                                                                                            \
    const auto check_actual = (actual);                                                                                    \
    const auto check_expected = (expected);                                                                                \
    if (!(check_actual == check_expected))                                                                                 \
      fail(__FILE__, __LINE__, #actual " == " #expected ": got " + text(check_actual) + ", want " + text(check_expected)); \
  } while (0)

/** `haystack` contains `needle`, printing the haystack when not. */
#define CHECK_CONTAINS(haystack, needle)                                                                             \
  do {                                                                                                               \
    g_checks++;                                                                                                      \
    const std::string check_text = (haystack);                                                                       \
    if (check_text.find(needle) == std::string::npos)                                                                \
      fail(__FILE__, __LINE__, std::string(#haystack " contains \"") + (needle) + "\": got \"" + check_text + "\""); \
  } while (0)

#define CHECK_STATUS(result_expression, expected_status)                                                                             \
  do {                                                                                                                               \
    g_checks++;                                                                                                                      \
    const halo_gpu::Result check_result = (result_expression);                                                                       \
    if (check_result.status != (expected_status))                                                                                    \
      fail(__FILE__, __LINE__,                                                                                                       \
           #result_expression ": status " + text(static_cast<int>(check_result.status)) + " (" + check_result.message + "), want " + \
               text(static_cast<int>(expected_status)));                                                                             \
  } while (0)

#define CHECK_OK(result_expression) CHECK_STATUS(result_expression, halo_gpu::Status::Ok)

std::mt19937_64 g_rng(0x5eed2024);

uint32_t f32_bits(float value) {
  uint32_t bits;
  std::memcpy(&bits, &value, 4);
  return bits;
}
float bits_f32(uint32_t bits) {
  float value;
  std::memcpy(&value, &bits, 4);
  return value;
}

/** Runs `kernel` by name through the emulator; the error (empty when it ran) is returned. */
std::string launch(const char* name, halo_emu::Dim3 grid, halo_emu::Dim3 block, const void* args) {
  const halo_emu::KernelInfo* kernel = halo_emu::find_kernel(name);
  if (kernel == nullptr) return std::string("no kernel ") + name;
  std::string error;
  if (!halo_emu::run(*kernel, grid, block, args, &error)) return error.empty() ? "failed without a message" : error;
  return "";
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------------
// Test kernels. Global scope: HALO_KERNEL defines static functions and their registrations.

/** Barrier ordering: each thread reads its neighbour's shared slot (only written before the barrier), then a tree
 *  reduction in shared memory with a barrier per level. in/rotated [blocks][threads], sums [blocks]. */
struct emu_test_rotate_args {
  const int32_t* in;
  int32_t* rotated;
  int32_t* sums;
  uint32_t threads;
};
HALO_KERNEL(emu_test_rotate, emu_test_rotate_args, 256) {
  HALO_SHARED(int32_t, tile, 256);
  const unsigned t = halo_thread(), n = args.threads, base = halo_block_x() * n;
  tile[t] = args.in[base + t];
  halo_barrier();
  args.rotated[base + t] = tile[(t + 1) % n];
  halo_barrier();
  for (unsigned stride = n / 2; stride > 0; stride >>= 1) {
    if (t < stride) tile[t] += tile[t + stride];
    halo_barrier();
  }
  if (t == 0) args.sums[halo_block_x()] = tile[0];
}

/** Arbitrary-source exchange and a broadcast. values/sources/picked/broadcast [threads]. */
struct emu_test_exchange_args {
  const uint32_t* values;
  const uint32_t* sources;
  uint32_t* picked;
  uint32_t* broadcast;
};
HALO_KERNEL(emu_test_exchange, emu_test_exchange_args, 256) {
  const unsigned t = halo_thread();
  args.picked[t] = halo_exchange_u32(args.values[t], args.sources[t]);
  args.broadcast[t] = halo_exchange_u32(args.values[t] * 3u, 5);
}

/** Wave reductions and ballots of halo_gpu.h. x, ix, sum, max, isum, ballots: [threads]. */
struct emu_test_wave_args {
  const float* x;
  const int32_t* ix;
  float* sum;
  float* max;
  int32_t* isum;
  uint32_t* ballots;
  float* xor_once;
};
HALO_KERNEL(emu_test_wave, emu_test_wave_args, 256) {
  const unsigned t = halo_thread();
  args.sum[t] = halo_wave_sum_f32(args.x[t]);
  args.max[t] = halo_wave_max_f32(args.x[t]);
  args.isum[t] = halo_wave_sum_i32(args.ix[t]);
  args.ballots[t] = halo_ballot(args.x[t] > 0.0f);
  args.xor_once[t] = halo_shfl_xor_f32(args.x[t], 9);
}

/** Block sums over a 3-D grid: wave sums, one shared slot per wave, wave 0 sums the slots. Also checks that shared
 *  memory is the block's own (another block's writes would show). x [blocks][threads], out/leaks/os [blocks]. */
struct emu_test_grid_args {
  const float* x;
  float* out;
  int32_t* leaks;
  uint64_t* os_thread;  // [blocks]: a hash of the OS thread that ran each block
  uint32_t threads;
  int32_t wait_for_second;  // block 0 waits (up to 10 s) until another block ran on another OS thread
};
HALO_KERNEL(emu_test_grid, emu_test_grid_args, 256) {
  HALO_SHARED(float, wave_sums, 8);
  HALO_SHARED(uint32_t, owner, 256);
  const unsigned t = halo_thread(), n = args.threads;
  const unsigned block = (halo_block_z() * 5 + halo_block_y()) * 7 + halo_block_x();  // grid (7, 5, 3)
  owner[t] = block * 1000 + t;
  const float total = halo_wave_sum_f32(args.x[block * n + t]);
  if (halo_lane() == 0) wave_sums[halo_wave_index()] = total;
  halo_barrier();
  if (owner[(t + 37) % n] != block * 1000 + (t + 37) % n) args.leaks[block] = 1;
  if (halo_wave_index() == 0) {
    const float value = halo_lane() < n / HALO_WAVE ? wave_sums[halo_lane()] : 0.0f;
    const float sum = halo_wave_sum_f32(value);
    if (t == 0) args.out[block] = sum;
  }
  if (t == 0) {
    // Test-only cross-block wait (blocks on different OS threads): proves that two threads took part.
    const uint64_t me = std::hash<std::thread::id>()(std::this_thread::get_id()) | 1;
    __atomic_store_n(&args.os_thread[block], me, __ATOMIC_RELEASE);
    const unsigned blocks = 7 * 5 * 3;
    for (int waited = 0; block == 0 && args.wait_for_second != 0 && waited < 10000; waited++) {
      bool other = false;
      for (unsigned b = 1; b < blocks && !other; b++) {
        const uint64_t id = __atomic_load_n(&args.os_thread[b], __ATOMIC_ACQUIRE);
        other = id != 0 && id != me;
      }
      if (other) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
  }
}

/** Deadlocks and divergence, each of which must come back as an error. */
struct emu_test_fault_args {
  uint32_t* out;  // [threads]
  uint32_t mode;
};
HALO_KERNEL(emu_test_fault, emu_test_fault_args, 256) {
  const unsigned t = halo_thread();
  switch (args.mode) {
    case 0:  // a barrier only the first wave reaches
      if (t < 32) halo_barrier();
      break;
    case 1:  // a thread returns before a barrier
      if (t == 40) return;
      halo_barrier();
      break;
    case 2:  // lane 7 of wave 1 skips an exchange
      if (t != 39) args.out[t] = halo_exchange_u32(t, 0);
      break;
    case 3:  // half a wave exchanges, the other half ballots
      if (halo_lane() < 16) args.out[t] = halo_exchange_u32(t, 1);
      else args.out[t] = halo_ballot(true);
      break;
    case 4:  // only blocks 3 and 5 deadlock
      if ((halo_block_x() == 3 || halo_block_x() == 5) && t == 0) return;
      halo_barrier();
      break;
    case 5: {  // a launch from inside a kernel is refused, not run
      std::string error;
      const halo_emu::KernelInfo* self = halo_emu::find_kernel("emu_test_fault");
      const emu_test_fault_args inner{args.out, 0};
      args.out[t] = halo_emu::run(*self, {1, 1, 1}, {32, 1, 1}, &inner, &error) ? 1u : 2u;
      if (error.find("launched from inside a kernel") == std::string::npos) args.out[t] = 3;
      return;
    }
    case 6:  // the mismatch the other way round: lanes 0–15 ballot first, a later lane exchanges
      if (halo_lane() < 16) args.out[t] = halo_ballot(true);
      else args.out[t] = halo_exchange_u32(t, 1);
      break;
    default: break;
  }
  args.out[t] = 7;
}

/** Each fiber keeps its own floating-point environment: thread t rounds in mode t % 4 across two barriers (a fiber
 *  that saw another's mode would report it), and the launching thread's mode comes back untouched.
 *  modes [threads][2]: the mode after each barrier. */
constexpr int kRoundingModes[4] = {FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO};
struct emu_test_rounding_args {
  int32_t* modes;
};
HALO_KERNEL(emu_test_rounding, emu_test_rounding_args, 64) {
  const unsigned t = halo_thread();
  std::fesetround(kRoundingModes[t % 4]);
  halo_barrier();
  args.modes[2 * t] = std::fegetround();
  halo_barrier();
  args.modes[2 * t + 1] = std::fegetround();
}

/** Thread 5 recurses `depth` KiB deep: past its 64 KiB stack (256 KiB under ASan), into where thread 4's stack lies —
 *  the guard page between them must stop it. */
// Not instrumented: under ASan the buffer would live on a heap-allocated fake stack and the real one would not grow.
__attribute__((noinline, no_sanitize_address)) int emu_test_recurse(int depth) {
  volatile char buffer[1024];
  buffer[0] = static_cast<char>(depth);
  const int below = depth > 0 ? emu_test_recurse(depth - 1) : 0;
  return below + buffer[0] + buffer[1023];
}
struct emu_test_overflow_args {
  int32_t* out;
  int32_t depth;
};
HALO_KERNEL(emu_test_overflow, emu_test_overflow_args, 64) {
  if (halo_thread() == 5) args.out[0] = emu_test_recurse(args.depth);
}

/** y = y·a + b, elementwise: order-sensitive, for graph replay. y [n]. */
struct emu_test_affine_args {
  float* y;
  int32_t n;
  float a, b;
};
HALO_KERNEL(emu_test_affine, emu_test_affine_args, 64) {
  const int32_t i = static_cast<int32_t>(halo_block_x() * 64 + halo_thread());
  if (i < args.n) args.y[i] = args.y[i] * args.a + args.b;
}

/** Benchmarks: `rounds` barriers, or `rounds` wave sums. */
struct emu_test_spin_args {
  int32_t rounds, exchange;
  float* out;  // [threads]
};
HALO_KERNEL(emu_test_spin, emu_test_spin_args, 256) {
  float value = static_cast<float>(halo_thread());
  for (int32_t r = 0; r < args.rounds; r++) {
    if (args.exchange != 0) value = halo_wave_sum_f32(value) * 0.03125f;
    else halo_barrier();
  }
  args.out[halo_thread()] = value;
}

/** The block reduction of the benchmark: wave sums, then a sum of the 8 wave totals. x [blocks][256], out [blocks]. */
struct emu_test_reduce_args {
  const float* x;
  float* out;
};
HALO_KERNEL(emu_test_reduce, emu_test_reduce_args, 256) {
  HALO_SHARED(float, partial, 8);
  const unsigned t = halo_thread();
  const float total = halo_wave_sum_f32(args.x[halo_block_x() * 256 + t]);
  if (halo_lane() == 0) partial[halo_wave_index()] = total;
  halo_barrier();
  if (halo_wave_index() == 0) {
    const float sum = halo_wave_sum_f32(halo_lane() < 8 ? partial[halo_lane()] : 0.0f);
    if (t == 0) args.out[halo_block_x()] = sum;
  }
}

namespace {

/** The butterfly of halo_wave_sum_f32 on one wave, in scalar code: lane l adds lane l ^ mask, masks 16 … 1. */
void twin_wave_sum(const float* in, float* out) {
  float v[32];
  std::memcpy(v, in, sizeof v);
  for (unsigned mask = 16; mask > 0; mask >>= 1) {
    float next[32];
    for (unsigned l = 0; l < 32; l++) next[l] = v[l] + v[l ^ mask];
    std::memcpy(v, next, sizeof v);
  }
  std::memcpy(out, v, sizeof v);
}

float awkward_float() {
  // Magnitudes over 12 binades so that the order of additions shows in the low bits.
  const float mantissa = std::uniform_real_distribution<float>(-1.0f, 1.0f)(g_rng);
  return std::ldexp(mantissa, std::uniform_int_distribution<int>(-6, 6)(g_rng));
}

// ---------------------------------------------------------------------------------------------------------------
void test_barrier_shared() {
  for (uint32_t threads : {32u, 64u, 256u}) {
    const unsigned blocks = 5;
    std::vector<int32_t> in(blocks * threads), rotated(in.size(), -1), sums(blocks, -1);
    for (auto& v : in) v = std::uniform_int_distribution<int32_t>(-100000, 100000)(g_rng);
    emu_test_rotate_args args{in.data(), rotated.data(), sums.data(), threads};
    CHECK_EQ(launch("emu_test_rotate", {blocks, 1, 1}, {threads, 1, 1}, &args), std::string());
    for (unsigned b = 0; b < blocks; b++) {
      int64_t sum = 0;
      for (unsigned t = 0; t < threads; t++) {
        sum += in[b * threads + t];
        CHECK_EQ(rotated[b * threads + t], in[b * threads + (t + 1) % threads]);
      }
      CHECK_EQ(sums[b], static_cast<int32_t>(sum));
    }
  }
}

void test_exchange() {
  const uint32_t threads = 256;
  std::vector<uint32_t> values(threads), sources(threads), picked(threads), broadcast(threads);
  for (unsigned t = 0; t < threads; t++) {
    values[t] = static_cast<uint32_t>(g_rng());
    sources[t] = t % 5 == 0 ? static_cast<uint32_t>(g_rng() % 1000) : static_cast<uint32_t>(g_rng() % 32);  // some ≥ 32: taken mod 32
  }
  emu_test_exchange_args args{values.data(), sources.data(), picked.data(), broadcast.data()};
  CHECK_EQ(launch("emu_test_exchange", {1, 1, 1}, {threads, 1, 1}, &args), std::string());
  for (unsigned t = 0; t < threads; t++) {
    const unsigned wave = t / 32 * 32;
    CHECK_EQ(picked[t], values[wave + sources[t] % 32]);
    CHECK_EQ(broadcast[t], values[wave + 5] * 3u);
  }
}

void test_wave_reductions() {
  const uint32_t threads = 256;
  std::vector<float> x(threads), sum(threads), max(threads), xor_once(threads);
  std::vector<int32_t> ix(threads), isum(threads);
  std::vector<uint32_t> ballots(threads);
  for (unsigned t = 0; t < threads; t++) {
    x[t] = awkward_float();
    ix[t] = std::uniform_int_distribution<int32_t>(-(1 << 24), 1 << 24)(g_rng);
  }
  x[70] = -0.0f;
  x[71] = 0.0f;
  emu_test_wave_args args{x.data(), ix.data(), sum.data(), max.data(), isum.data(), ballots.data(), xor_once.data()};
  CHECK_EQ(launch("emu_test_wave", {1, 1, 1}, {threads, 1, 1}, &args), std::string());
  int sums_differing_from_sequential = 0;
  for (unsigned w = 0; w < threads / 32; w++) {
    float twin[32];
    twin_wave_sum(&x[w * 32], twin);
    float sequential = 0.0f, wave_max = -INFINITY;
    int32_t isequential = 0;
    uint32_t mask = 0;
    for (unsigned l = 0; l < 32; l++) {
      sequential += x[w * 32 + l];
      wave_max = std::max(wave_max, x[w * 32 + l]);
      isequential += ix[w * 32 + l];
      if (x[w * 32 + l] > 0.0f) mask |= 1u << l;
    }
    for (unsigned l = 0; l < 32; l++) {
      const unsigned t = w * 32 + l;
      CHECK_EQ(f32_bits(sum[t]), f32_bits(twin[l]));
      CHECK_EQ(max[t], wave_max);
      CHECK_EQ(isum[t], isequential);
      CHECK_EQ(ballots[t], mask);
      CHECK_EQ(f32_bits(xor_once[t]), f32_bits(x[w * 32 + (l ^ 9)]));
    }
    if (f32_bits(sum[w * 32]) != f32_bits(sequential)) sums_differing_from_sequential++;
  }
  // The data are chosen so that the butterfly's order matters: the twin check above is not vacuous.
  CHECK(sums_differing_from_sequential > 0);
}

void test_deadlocks() {
  std::vector<uint32_t> out(256);
  struct Case {
    uint32_t mode;
    unsigned threads;
    std::vector<const char*> needles;
  };
  const Case cases[] = {
      {0, 64, {"kernel emu_test_fault block (0,0,0)", "deadlocked", "32 wait at a barrier", "32 returned", "first waiting threads: 0 (barrier)"}},
      {1, 64, {"deadlocked", "63 wait at a barrier", "1 returned", "0 (barrier), 1 (barrier)"}},
      {2, 64, {"deadlocked", "31 in exchange", "32 (exchange)"}},
      {3, 32, {"thread 16 called ballot while thread 0 of its wave waits in exchange"}},
      {6, 64, {"thread 16 called exchange while thread 0 of its wave waits in ballot"}},
  };
  for (const Case& c : cases) {
    emu_test_fault_args args{out.data(), c.mode};
    const std::string error = launch("emu_test_fault", {2, 1, 1}, {c.threads, 1, 1}, &args);
    CHECK(!error.empty());
    for (const char* needle : c.needles) CHECK_CONTAINS(error, needle);
    // The emulator stays usable after abandoning a block's fibers mid-kernel.
    std::vector<int32_t> in(64, 1), rotated(64), sums(1);
    emu_test_rotate_args ok_args{in.data(), rotated.data(), sums.data(), 64};
    CHECK_EQ(launch("emu_test_rotate", {1, 1, 1}, {64, 1, 1}, &ok_args), std::string());
    CHECK_EQ(sums[0], 64);
  }
  // The failing block named is the lowest one, whatever the number of OS threads.
  for (unsigned threads : {1u, 2u}) {
    halo_emu::set_threads(threads);
    emu_test_fault_args args{out.data(), 4};
    const std::string error = launch("emu_test_fault", {64, 1, 1}, {64, 1, 1}, &args);
    CHECK_CONTAINS(error, "block (3,0,0)");
  }
  halo_emu::set_threads(0);
  // A launch from inside a kernel is refused.
  emu_test_fault_args nested{out.data(), 5};
  std::fill(out.begin(), out.end(), 0u);
  CHECK_EQ(launch("emu_test_fault", {1, 1, 1}, {32, 1, 1}, &nested), std::string());
  for (unsigned t = 0; t < 32; t++) CHECK_EQ(out[t], 2u);  // every thread's nested run was refused with the reason
}

void test_rounding_modes() {
  std::vector<int32_t> modes(128, -1);
  emu_test_rounding_args args{modes.data()};
  CHECK_EQ(launch("emu_test_rounding", {1, 1, 1}, {64, 1, 1}, &args), std::string());
  for (unsigned t = 0; t < 64; t++) {
    CHECK_EQ(modes[2 * t], kRoundingModes[t % 4]);
    CHECK_EQ(modes[2 * t + 1], kRoundingModes[t % 4]);
  }
  CHECK_EQ(std::fegetround(), FE_TONEAREST);  // the launching thread's mode is its own
}

/** A kernel that overflows its fiber stack dies of SIGSEGV on the guard page (in a child process) instead of writing
 *  over the neighbouring fiber's stack; a shallower recursion runs. */
void test_stack_guard() {
  int32_t result = 0;
  emu_test_overflow_args shallow{&result, 40};  // ~40 KiB: fits
  CHECK_EQ(launch("emu_test_overflow", {1, 1, 1}, {64, 1, 1}, &shallow), std::string());
  std::fflush(nullptr);
  const pid_t child = fork();
  if (child == 0) {
    // The child's report (a signal, or ASan's stack-overflow message) is the expected outcome: keep it off stderr.
    if (std::freopen("/dev/null", "w", stderr) == nullptr) _exit(3);
    halo_emu::set_threads(1);
    int32_t out = 0;
#if defined(__SANITIZE_ADDRESS__)
    emu_test_overflow_args deep{&out, 300};  // sanitized builds give fibers 256 KiB
#else
    emu_test_overflow_args deep{&out, 80};
#endif
    launch("emu_test_overflow", {1, 1, 1}, {64, 1, 1}, &deep);
    _exit(0);  // reached only if the overflow went unnoticed
  }
  CHECK(child > 0);
  if (child <= 0) return;
  int status = 0;
  CHECK_EQ(waitpid(child, &status, 0), child);
#if defined(__SANITIZE_ADDRESS__)
  CHECK(!(WIFEXITED(status) && WEXITSTATUS(status) == 0));  // ASan turns the fault into its own report and exit
#else
  CHECK(WIFSIGNALED(status));
  if (WIFSIGNALED(status)) CHECK_EQ(WTERMSIG(status), SIGSEGV);
#endif
}

void test_launch_checks() {
  std::vector<uint32_t> out(256);
  emu_test_fault_args args{out.data(), 99};
  const halo_emu::KernelInfo* kernel = halo_emu::find_kernel("emu_test_fault");
  CHECK(kernel != nullptr);
  CHECK(halo_emu::find_kernel("no_such_kernel") == nullptr);
  CHECK(halo_emu::is_registered(kernel));
  CHECK(!halo_emu::is_registered(&args));
  std::string error;
  CHECK(!halo_emu::run(*kernel, {1, 1, 1}, {48, 1, 1}, &args, &error));
  CHECK_CONTAINS(error, "multiple of 32");
  CHECK(!halo_emu::run(*kernel, {1, 1, 1}, {512, 1, 1}, &args, &error));
  CHECK_CONTAINS(error, "exceeds the 256 threads");
  CHECK(!halo_emu::run(*kernel, {1, 1, 1}, {64, 2, 1}, &args, &error));
  CHECK_CONTAINS(error, "block.y and block.z must be 1");
  CHECK(!halo_emu::run(*kernel, {0, 1, 1}, {64, 1, 1}, &args, &error));
  CHECK_CONTAINS(error, "zero dimension");
  CHECK(!halo_emu::run(*kernel, {1, 70000, 1}, {64, 1, 1}, &args, &error));
  CHECK_CONTAINS(error, "exceeds the GPU limits");
  CHECK(!halo_emu::run(*kernel, {1, 1, 1}, {64, 1, 1}, nullptr, &error));
  CHECK_CONTAINS(error, "null argument block");
  CHECK(halo_emu::run(*kernel, {1, 1, 1}, {64, 1, 1}, &args, &error));
  for (unsigned t = 0; t < 64; t++) CHECK_EQ(out[t], 7u);
  // Outside a kernel the primitives are harmless.
  CHECK_EQ(halo_emu::thread_x(), 0u);
  CHECK_EQ(halo_emu::exchange_u32(5, 3), 5u);
  halo_emu::barrier();
}

void test_grid_threads() {
  const unsigned gx = 7, gy = 5, gz = 3, blocks = gx * gy * gz;
  for (uint32_t threads : {96u, 256u}) {
    std::vector<float> x(blocks * threads);
    for (auto& v : x) v = awkward_float();
    std::vector<float> want(blocks);
    for (unsigned b = 0; b < blocks; b++) {
      float wave_totals[32] = {};
      for (unsigned w = 0; w < threads / 32; w++) {
        float lanes[32];
        twin_wave_sum(&x[b * threads + w * 32], lanes);
        wave_totals[w] = lanes[0];
      }
      float lanes[32];
      twin_wave_sum(wave_totals, lanes);
      want[b] = lanes[0];
    }
    std::vector<float> first;
    for (unsigned os_threads : {1u, 2u}) {
      CHECK_EQ(halo_emu::set_threads(os_threads), os_threads);
      std::vector<float> out(blocks, -1.0f);
      std::vector<int32_t> leaks(blocks, 0);
      std::vector<uint64_t> os(blocks, 0);
      emu_test_grid_args args{x.data(), out.data(), leaks.data(), os.data(), threads, os_threads == 2};
      CHECK_EQ(launch("emu_test_grid", {gx, gy, gz}, {threads, 1, 1}, &args), std::string());
      for (unsigned b = 0; b < blocks; b++) {
        CHECK_EQ(f32_bits(out[b]), f32_bits(want[b]));
        CHECK_EQ(leaks[b], 0);
      }
      if (first.empty()) first = out;
      CHECK(std::memcmp(first.data(), out.data(), blocks * sizeof(float)) == 0);
      CHECK_EQ(std::set<uint64_t>(os.begin(), os.end()).size(), static_cast<size_t>(os_threads));
    }
  }
  halo_emu::set_threads(0);
}

/** Launches from two OS threads at once (two devices driven by two Node workers): one takes the pool's helpers, the
 *  other runs its blocks alone; both give the twin's results. */
void test_concurrent_launches() {
  halo_emu::set_threads(2);
  const unsigned blocks = 7 * 5 * 3, threads = 64;
  std::vector<float> x(blocks * threads);
  for (auto& v : x) v = awkward_float();
  std::vector<float> want(blocks);
  for (unsigned b = 0; b < blocks; b++) {
    float totals[32] = {}, lanes[32];
    for (unsigned w = 0; w < threads / 32; w++) {
      twin_wave_sum(&x[b * threads + w * 32], lanes);
      totals[w] = lanes[0];
    }
    twin_wave_sum(totals, lanes);
    want[b] = lanes[0];
  }
  int mismatches[2] = {0, 0};
  auto launcher = [&](int which) {
    for (int round = 0; round < 40; round++) {
      std::vector<float> out(blocks, -1.0f);
      std::vector<int32_t> leaks(blocks, 0);
      std::vector<uint64_t> os(blocks, 0);
      emu_test_grid_args args{x.data(), out.data(), leaks.data(), os.data(), threads, 0};
      if (!launch("emu_test_grid", {7, 5, 3}, {threads, 1, 1}, &args).empty()) mismatches[which]++;
      if (std::memcmp(out.data(), want.data(), blocks * sizeof(float)) != 0) mismatches[which]++;
      for (int32_t leak : leaks) mismatches[which] += leak;
    }
  };
  std::thread other(launcher, 1);
  launcher(0);
  other.join();
  CHECK_EQ(mismatches[0], 0);
  CHECK_EQ(mismatches[1], 0);
  halo_emu::set_threads(0);
}

// ---------------------------------------------------------------------------------------------------------------
// f16: against the compiler's own binary16 type.
#if defined(__x86_64__) || defined(__clang__)
using host_half = _Float16;
#define HALO_TEST_HOST_HALF 1
#elif defined(__aarch64__)
using host_half = __fp16;
#define HALO_TEST_HOST_HALF 1
#endif

#if defined(HALO_TEST_HOST_HALF)
uint16_t host_f32_to_f16(float value) {
  const volatile host_half half = static_cast<host_half>(value);
  const host_half copy = half;
  uint16_t bits;
  std::memcpy(&bits, &copy, 2);
  return bits;
}
float host_f16_to_f32(uint16_t bits) {
  host_half half;
  std::memcpy(&half, &bits, 2);
  const volatile float value = static_cast<float>(half);
  return value;
}
#endif

bool full_f16 = false;

void test_f16() {
  int widen_mismatches = 0, trip_mismatches = 0;
  for (uint32_t h = 0; h < 65536; h++) {
    const uint16_t half = static_cast<uint16_t>(h);
    const float value = halo_emu::f16_to_f32(half);
    const bool nan = (h & 0x7c00u) == 0x7c00u && (h & 0x3ffu) != 0;
#if defined(HALO_TEST_HOST_HALF)
    if (f32_bits(value) != f32_bits(host_f16_to_f32(half)) && widen_mismatches++ < 5)
      fail(__FILE__, __LINE__, "f16_to_f32(" + text(h) + ") = " + text(f32_bits(value)) + ", host " + text(f32_bits(host_f16_to_f32(half))));
#endif
    // Round trip: every value exactly; a NaN comes back with its quiet bit set (sign and payload kept).
    const uint16_t back = halo_emu::f32_to_f16(value);
    const uint16_t want = nan ? static_cast<uint16_t>(h | 0x200u) : half;
    if (back != want && trip_mismatches++ < 5) fail(__FILE__, __LINE__, "f16 round trip of " + text(h) + " gave " + text(back));
    g_checks += 2;
  }
  CHECK_EQ(widen_mismatches, 0);
  CHECK_EQ(trip_mismatches, 0);
  // Known values.
  CHECK_EQ(halo_emu::f32_to_f16(65504.0f), 0x7bffu);
  CHECK_EQ(halo_emu::f32_to_f16(65519.996f), 0x7bffu);
  CHECK_EQ(halo_emu::f32_to_f16(65520.0f), 0x7c00u);
  CHECK_EQ(halo_emu::f32_to_f16(-1e9f), 0xfc00u);
  CHECK_EQ(halo_emu::f32_to_f16(std::ldexp(1.0f, -24)), 0x0001u);
  CHECK_EQ(halo_emu::f32_to_f16(std::ldexp(1.0f, -25)), 0x0000u);             // tie to even: 0
  CHECK_EQ(halo_emu::f32_to_f16(std::ldexp(3.0f, -25)), 0x0002u);             // 1.5 ulp: tie to even 2
  CHECK_EQ(halo_emu::f32_to_f16(-std::ldexp(1.0f, -26)), 0x8000u);            // −0
  CHECK_EQ(halo_emu::f32_to_f16(1.0f + std::ldexp(1.0f, -11)), 0x3c00u);      // tie: even 1.0
  CHECK_EQ(halo_emu::f32_to_f16(1.0f + std::ldexp(3.0f, -11)), 0x3c02u);      // tie: even up
  CHECK_EQ(halo_emu::f32_to_f16(std::ldexp(1023.5f, -24)), 0x0400u);          // rounds up into the smallest normal
  CHECK_EQ(f32_bits(halo_emu::f16_to_f32(0x0001)), f32_bits(std::ldexp(1.0f, -24)));
  CHECK_EQ(f32_bits(halo_emu::f16_to_f32(0x7c01)), 0x7fc02000u);  // signalling NaN widened quiet

#if defined(HALO_TEST_HOST_HALF)
  // Narrowing against the host: edges, every tie between neighbouring halves and its f32 neighbours, random floats.
  int narrow_mismatches = 0;
  uint64_t compared = 0;
  auto compare = [&](uint32_t bits) {
    const float value = bits_f32(bits);
    const uint16_t ours = halo_emu::f32_to_f16(value), host = host_f32_to_f16(value);
    compared++;
    if (ours != host && narrow_mismatches++ < 5) fail(__FILE__, __LINE__, "f32_to_f16(" + text(bits) + ") = " + text(ours) + ", host " + text(host));
  };
  for (uint32_t bits : {0x00000000u, 0x00000001u, 0x007fffffu, 0x00800000u, 0x33000000u, 0x33000001u, 0x337fffffu, 0x38800000u, 0x387fffffu, 0x477fe000u,
                        0x477fefffu, 0x477ff000u, 0x477ff001u, 0x7f7fffffu, 0x7f800000u, 0x7f800001u, 0x7fbfffffu, 0x7fc00000u, 0x7fffffffu, 0x7f802000u})
    for (uint32_t sign : {0u, 0x80000000u}) compare(bits | sign);
  for (uint32_t h = 0; h < 0x7c00u; h++) {
    const uint32_t lo = f32_bits(halo_emu::f16_to_f32(static_cast<uint16_t>(h))), hi = f32_bits(halo_emu::f16_to_f32(static_cast<uint16_t>(h + 1)));
    const uint32_t tie = f32_bits((bits_f32(lo) + bits_f32(hi)) * 0.5f);  // exact: one bit more than a half holds
    for (uint32_t bits : {tie - 1, tie, tie + 1, lo + 1, hi - 1})
      for (uint32_t sign : {0u, 0x80000000u}) compare(bits | sign);
  }
  for (int i = 0; i < 3000000; i++) {
    const uint32_t random = static_cast<uint32_t>(g_rng());
    compare(random);
    // …and as many inside the binary16 range, where the rounding happens.
    compare((random & 0x807fffffu) | ((0x66u + random % 0x1bu) << 23));
  }
  if (full_f16) {
    for (uint64_t bits = 0; bits <= 0xffffffffu; bits++) compare(static_cast<uint32_t>(bits));
    std::printf("  f16: all 2^32 floats compared with the host's conversion\n");
  }
  g_checks += static_cast<int>(std::min<uint64_t>(compared, 1u << 30));
  CHECK_EQ(narrow_mismatches, 0);
#else
  std::printf("  f16: no host binary16 type on this compiler; only round trips and known values checked\n");
#endif
}

// ---------------------------------------------------------------------------------------------------------------
// The emulated Device.
std::unique_ptr<halo_gpu::Device> open_device(const std::string& directory = "") {
  std::unique_ptr<halo_gpu::Device> device;
  const halo_gpu::Result result = halo_gpu::open_emulator({directory}, &device);
  CHECK_OK(result);
  CHECK(device != nullptr);
  return device;
}

void test_device_memory() {
  using halo_gpu::Status;
  auto device = open_device();
  if (!device) return;
  CHECK(device->info().kind == halo_gpu::Kind::Emulator);
  CHECK_EQ(device->info().name, std::string("halo GPU emulator (CPU)"));
  CHECK_EQ(device->info().arch, std::string("emulator"));
  CHECK_EQ(device->info().total_bytes, static_cast<size_t>(8) << 30);
  CHECK(device->graphs());

  void* a = nullptr;
  void* b = nullptr;
  CHECK_OK(device->alloc(1000, &a));
  CHECK_OK(device->alloc(300, &b));
  CHECK_EQ(reinterpret_cast<uintptr_t>(a) % 256, static_cast<uintptr_t>(0));
  CHECK_EQ(reinterpret_cast<uintptr_t>(b) % 256, static_cast<uintptr_t>(0));
  CHECK_STATUS(device->alloc(0, &a), Status::BadArgument);
  CHECK_OK(device->alloc(1000, &a));  // a was reset by the refused alloc; take a fresh one (the old leaks into the device, freed at close)
  size_t free_bytes = 0, total = 0;
  CHECK_OK(device->memory(&free_bytes, &total));
  CHECK_EQ(total - free_bytes, static_cast<size_t>(1024 + 1024 + 512));

  std::vector<uint8_t> host(1000), back(1000);
  for (auto& v : host) v = static_cast<uint8_t>(g_rng());
  CHECK_OK(device->download(back.data(), a, 1000));
  CHECK_EQ(back[0], 0xffu);  // new memory is poisoned, not zero
  CHECK_EQ(back[999], 0xffu);
  CHECK_OK(device->upload(a, host.data(), 1000));
  CHECK_OK(device->download(back.data(), a, 1000));
  CHECK(host == back);
  char* ca = static_cast<char*>(a);
  CHECK_OK(device->upload(ca + 500, host.data(), 500));
  CHECK_STATUS(device->upload(ca + 500, host.data(), 501), Status::BadArgument);
  CHECK_STATUS(device->upload(a, host.data(), 1001), Status::BadArgument);
  CHECK_STATUS(device->upload(ca + 1000, host.data(), 1), Status::BadArgument);  // past the asked size, inside the rounded block
  CHECK_STATUS(device->upload(ca - 1, host.data(), 1), Status::BadArgument);
  CHECK_STATUS(device->upload(nullptr, host.data(), 1), Status::BadArgument);
  CHECK_STATUS(device->upload(a, nullptr, 1), Status::BadArgument);
  CHECK_STATUS(device->download(back.data(), host.data(), 10), Status::BadArgument);  // a host pointer is no device pointer
  CHECK_STATUS(device->download(nullptr, a, 10), Status::BadArgument);
  CHECK_STATUS(device->download(back.data(), ca + 990, 11), Status::BadArgument);
  CHECK_OK(device->upload(a, host.data(), 0));
  {
    const halo_gpu::Result r = device->upload(ca + 600, host.data(), 401);
    CHECK_CONTAINS(r.message, "run past the end of a 1000-byte allocation");
  }
  // Copies: inside one allocation each, never overlapping.
  CHECK_OK(device->copy(b, ca + 100, 300));
  CHECK_OK(device->download(back.data(), b, 300));
  CHECK(std::memcmp(back.data(), host.data() + 100, 300) == 0);
  CHECK_STATUS(device->copy(ca + 10, ca, 100), Status::BadArgument);
  CHECK_OK(device->copy(ca + 100, ca, 100));  // adjacent, not overlapping
  CHECK_STATUS(device->copy(b, a, 301), Status::BadArgument);
  CHECK_STATUS(device->copy(host.data(), a, 10), Status::BadArgument);
  CHECK_OK(device->fill(b, 0x3c, 300));
  CHECK_OK(device->download(back.data(), b, 300));
  CHECK_EQ(back[0], 0x3cu);
  CHECK_EQ(back[299], 0x3cu);
  CHECK_STATUS(device->fill(b, 0, 301), Status::BadArgument);
  // Releases: an unknown pointer is reported by the next synchronize, once; a released range is gone.
  device->release(host.data());
  {
    const halo_gpu::Result r = device->synchronize();
    CHECK(r.status == Status::BadArgument);
    CHECK_CONTAINS(r.message, "release");
  }
  CHECK_OK(device->synchronize());
  device->release(nullptr);
  CHECK_OK(device->synchronize());
  device->release(b);
  CHECK_STATUS(device->upload(b, host.data(), 1), Status::BadArgument);
  device->release(b);  // twice
  CHECK_STATUS(device->synchronize(), Status::BadArgument);
  device->release(ca + 8);  // inside an allocation but not its start
  CHECK_STATUS(device->synchronize(), Status::BadArgument);
  CHECK_OK(device->upload(a, host.data(), 8));  // a is still live
  device->release(a);
}

void test_device_cap() {
  using halo_gpu::Status;
  setenv("HALO_HIP_EMULATOR_MEMORY", "1048576", 1);
  auto device = open_device();
  if (device) {
    CHECK_EQ(device->info().total_bytes, static_cast<size_t>(1048576));
    void *a = nullptr, *b = nullptr, *c = nullptr;
    CHECK_OK(device->alloc(600000, &a));
    {
      const halo_gpu::Result r = device->alloc(600000, &b);
      CHECK(r.status == Status::OutOfMemory);
      CHECK_CONTAINS(r.message, "HALO_HIP_EMULATOR_MEMORY");
      CHECK(b == nullptr);
    }
    CHECK_STATUS(device->alloc(static_cast<size_t>(-1), &b), Status::OutOfMemory);
    CHECK_OK(device->alloc(448512, &b));  // exactly what is left after 600000 bytes rounded up to 600064
    CHECK_STATUS(device->alloc(1, &c), Status::OutOfMemory);
    size_t free_bytes = 1, total = 0;
    CHECK_OK(device->memory(&free_bytes, &total));
    CHECK_EQ(free_bytes, static_cast<size_t>(0));
    device->release(a);
    CHECK_OK(device->alloc(600000, &c));
    device->release(b);
    device->release(c);
  }
  for (const char* bad : {"12abc", "0", "-5", "", "99999999999999999999999"}) {
    setenv("HALO_HIP_EMULATOR_MEMORY", bad, 1);
    std::unique_ptr<halo_gpu::Device> refused;
    const halo_gpu::Result r = halo_gpu::open_emulator({""}, &refused);
    if (bad[0] == '\0') {
      CHECK(r.ok());  // empty = unset
    } else {
      CHECK(r.status == Status::BadArgument);
      CHECK_CONTAINS(r.message, "HALO_HIP_EMULATOR_MEMORY");
      CHECK(refused == nullptr);
    }
  }
  unsetenv("HALO_HIP_EMULATOR_MEMORY");
}

void test_device_faults() {
  using halo_gpu::Status;
  auto device = open_device();
  if (!device) return;
  void* a = nullptr;
  CHECK_OK(device->alloc(64, &a));
  uint8_t host[64] = {};
  CHECK_STATUS(halo_gpu::emulator_inject_fault("upload", 1), Status::Ok);
  CHECK_OK(device->upload(a, host, 64));
  {
    const halo_gpu::Result r = device->upload(a, host, 64);
    CHECK(r.status == Status::DeviceError);
    CHECK_CONTAINS(r.message, "injected");
  }
  CHECK_OK(device->upload(a, host, 64));  // one-shot
  CHECK_OK(halo_gpu::emulator_inject_fault("alloc", 0));
  void* b = nullptr;
  CHECK_STATUS(device->alloc(64, &b), Status::OutOfMemory);
  CHECK_OK(device->alloc(64, &b));
  CHECK_OK(halo_gpu::emulator_inject_fault("download", 0));
  CHECK_STATUS(device->download(host, a, 64), Status::DeviceError);
  CHECK_OK(halo_gpu::emulator_inject_fault("sync", 0));
  CHECK_STATUS(device->synchronize(), Status::DeviceError);
  CHECK_OK(device->synchronize());
  // A refused call (bad range) does not consume the fault: the fault is on the device call, after argument checks.
  CHECK_OK(halo_gpu::emulator_inject_fault("download", 0));
  CHECK_STATUS(device->download(host, a, 65), Status::BadArgument);
  CHECK_STATUS(device->download(host, a, 64), Status::DeviceError);
  // Clearing.
  CHECK_OK(halo_gpu::emulator_inject_fault("upload", 0));
  CHECK_OK(halo_gpu::emulator_inject_fault("download", 2));
  CHECK_OK(halo_gpu::emulator_inject_fault("anything", -1));
  CHECK_OK(device->upload(a, host, 64));
  for (int i = 0; i < 4; i++) CHECK_OK(device->download(host, a, 64));
  {
    const halo_gpu::Result r = halo_gpu::emulator_inject_fault("copy", 0);
    CHECK(r.status == Status::BadArgument);
    CHECK_CONTAINS(r.message, "'copy'");
  }
  // Launch faults: the kernel does not run and does not count.
  halo_gpu::KernelHandle affine = nullptr;
  CHECK_OK(device->kernel("emu_test_affine", &affine));
  float* y = static_cast<float*>(a);
  for (int i = 0; i < 16; i++) host[i] = 0;
  CHECK_OK(device->fill(a, 0, 64));
  emu_test_affine_args args{y, 16, 1.0f, 1.0f};
  CHECK_OK(halo_gpu::emulator_inject_fault("launch", 0));
  const uint64_t before = device->launches;
  CHECK_STATUS(device->launch(affine, {1, 1, 1}, {64, 1, 1}, &args, sizeof args), Status::DeviceError);
  CHECK_EQ(device->launches, before);
  CHECK_OK(device->launch(affine, {1, 1, 1}, {64, 1, 1}, &args, sizeof args));
  CHECK_EQ(device->launches, before + 1);
  float result[16];
  CHECK_OK(device->download(result, y, sizeof result));
  CHECK_EQ(result[0], 1.0f);
  CHECK_EQ(result[15], 1.0f);
  device->release(a);
  device->release(b);
}

void test_device_kernels_and_graphs() {
  using halo_gpu::Status;
  auto device = open_device();
  if (!device) return;
  halo_gpu::KernelHandle affine = nullptr, fault = nullptr;
  {
    const halo_gpu::Result r = device->kernel("no_such_kernel", &affine);
    CHECK(r.status == Status::BadArgument);
    CHECK_CONTAINS(r.message, "'no_such_kernel'");
  }
  CHECK_OK(device->kernel("emu_test_affine", &affine));
  CHECK_OK(device->kernel("emu_test_fault", &fault));
  const int n = 1000;
  std::vector<float> start(n);
  for (auto& v : start) v = awkward_float();
  void *a = nullptr, *b = nullptr, *out = nullptr;
  CHECK_OK(device->alloc(n * sizeof(float), &a));
  CHECK_OK(device->alloc(n * sizeof(float), &b));
  CHECK_OK(device->alloc(256 * sizeof(uint32_t), &out));
  CHECK_OK(device->upload(a, start.data(), n * sizeof(float)));
  CHECK_OK(device->upload(b, start.data(), n * sizeof(float)));
  const halo_gpu::Dim3 grid{(n + 63) / 64, 1, 1}, block{64, 1, 1};
  const float coefficients[3][2] = {{2.0f, 1.0f}, {0.5f, 3.0f}, {-1.0f, 0.25f}};

  // Bad launches.
  emu_test_affine_args args{static_cast<float*>(a), n, 1.0f, 0.0f};
  CHECK_STATUS(device->launch(affine, grid, block, &args, sizeof args - 4), Status::BadArgument);
  CHECK_STATUS(device->launch(&args, grid, block, &args, sizeof args), Status::BadArgument);
  CHECK_STATUS(device->launch(nullptr, grid, block, &args, sizeof args), Status::BadArgument);
  CHECK_STATUS(device->launch(affine, grid, {48, 1, 1}, &args, sizeof args), Status::BadArgument);
  CHECK_STATUS(device->launch(affine, grid, {128, 1, 1}, &args, sizeof args), Status::BadArgument);  // above the kernel's 64
  CHECK_STATUS(device->launch(affine, {0, 1, 1}, block, &args, sizeof args), Status::BadArgument);
  CHECK_STATUS(device->launch(affine, grid, block, nullptr, sizeof args), Status::BadArgument);
  // A deadlocking kernel: DeviceError with the emulator's message.
  emu_test_fault_args fault_args{static_cast<uint32_t*>(out), 0};
  {
    const halo_gpu::Result r = device->launch(fault, {1, 1, 1}, {64, 1, 1}, &fault_args, sizeof fault_args);
    CHECK(r.status == Status::DeviceError);
    CHECK_CONTAINS(r.message, "kernel emu_test_fault block (0,0,0)");
  }

  // Direct launches on b, a captured graph replayed on a: the same bits, the same order.
  const uint64_t launches_before = device->launches;
  CHECK_OK(device->begin_capture());
  CHECK_STATUS(device->begin_capture(), Status::BadArgument);
  for (const auto& c : coefficients) {
    emu_test_affine_args step{static_cast<float*>(a), n, c[0], c[1]};
    CHECK_OK(device->launch(affine, grid, block, &step, sizeof step));
    step.a = 99.0f;  // the graph holds its own copy of the arguments
  }
  CHECK_STATUS(device->upload(a, start.data(), 4), Status::BadArgument);
  CHECK_STATUS(device->synchronize(), Status::BadArgument);
  CHECK_STATUS(device->replay(0), Status::BadArgument);
  int graph = -1;
  CHECK_OK(device->end_capture(&graph));
  CHECK_STATUS(device->end_capture(&graph), Status::BadArgument);
  CHECK(graph >= 0);
  CHECK_EQ(device->launches, launches_before);  // captured, not run
  std::vector<float> after_capture(n);
  CHECK_OK(device->download(after_capture.data(), a, n * sizeof(float)));
  CHECK(std::memcmp(after_capture.data(), start.data(), n * sizeof(float)) == 0);
  for (int round = 0; round < 2; round++) {
    CHECK_OK(device->replay(graph));
    for (const auto& c : coefficients) {
      emu_test_affine_args step{static_cast<float*>(b), n, c[0], c[1]};
      CHECK_OK(device->launch(affine, grid, block, &step, sizeof step));
    }
  }
  CHECK_EQ(device->launches, launches_before + 12);
  std::vector<float> replayed(n), direct(n), want(start);
  CHECK_OK(device->download(replayed.data(), a, n * sizeof(float)));
  CHECK_OK(device->download(direct.data(), b, n * sizeof(float)));
  for (int round = 0; round < 2; round++)
    for (const auto& c : coefficients)
      for (auto& v : want) v = v * c[0] + c[1];
  CHECK(std::memcmp(replayed.data(), direct.data(), n * sizeof(float)) == 0);
  CHECK(std::memcmp(replayed.data(), want.data(), n * sizeof(float)) == 0);
  // A fault inside a replay names the graph and the launch.
  CHECK_OK(halo_gpu::emulator_inject_fault("launch", 1));
  {
    const halo_gpu::Result r = device->replay(graph);
    CHECK(r.status == Status::DeviceError);
    CHECK_CONTAINS(r.message, "replay of graph " + std::to_string(graph) + ", launch 1");
  }
  CHECK_STATUS(device->replay(graph + 1), Status::BadArgument);
  CHECK_STATUS(device->replay(-1), Status::BadArgument);
  device->drop_graphs();
  CHECK_STATUS(device->replay(graph), Status::BadArgument);
  CHECK_OK(device->begin_capture());
  int second = -1;
  CHECK_OK(device->end_capture(&second));
  CHECK(second != graph);
  CHECK_OK(device->replay(second));  // an empty graph
  device->release(a);
  device->release(b);
  device->release(out);
}

void test_device_targets() {
  char directory[] = "/tmp/halo-emu-test-XXXXXX";
  if (mkdtemp(directory) == nullptr) {
    fail(__FILE__, __LINE__, "mkdtemp failed");
    return;
  }
  const std::string base = directory;
  const char* names[] = {"halo_kernels.gfx1151.hsaco",     "halo_kernels.sm_90.cubin", "halo_kernels.compute_80.ptx",
                         "halo_kernels.gfx1100.hsaco.tmp", "halo_kernels.a.b.ptx",     "readme.txt",
                         "halo_kernels.gfx1151.cubin",     "halo_kernels..ptx"};
  for (const char* name : names) {
    FILE* file = std::fopen((base + "/" + name).c_str(), "w");
    if (file != nullptr) std::fclose(file);
  }
  auto device = open_device(base);
  if (device) {
    const std::vector<std::string> want = {"compute_80", "gfx1151", "sm_90"};
    CHECK(device->info().targets == want);
  }
  CHECK(halo_gpu::code_object_targets(base + "/missing").empty());
  for (const char* name : names) std::remove((base + "/" + name).c_str());
  rmdir(directory);
}

// ---------------------------------------------------------------------------------------------------------------
bool bench_long = false;

double seconds_since(std::chrono::steady_clock::time_point start) { return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count(); }

/** The fastest of `repeats` timed launches (the machine may be shared: the minimum is the emulator's own cost). */
double time_launch(const char* name, halo_emu::Dim3 grid, halo_emu::Dim3 block, const void* args, int repeats, uint64_t* switches) {
  double best = 1e30;
  for (int r = 0; r < repeats; r++) {
    const uint64_t before = halo_emu::switch_count();
    const auto start = std::chrono::steady_clock::now();
    const std::string error = launch(name, grid, block, args);
    best = std::min(best, seconds_since(start));
    CHECK_EQ(error, std::string());
    if (switches != nullptr) *switches = halo_emu::switch_count() - before;
  }
  return best;
}

void benchmark() {
  const int repeats = bench_long ? 20 : 5;
  std::vector<float> out(256);
  for (int exchange : {0, 1}) {
    emu_test_spin_args args{200, exchange, out.data()};
    uint64_t switches = 0;
    const double seconds = time_launch("emu_test_spin", {1, 1, 1}, {256, 1, 1}, &args, repeats, &switches);
    const double count = static_cast<double>(switches);
    std::printf("  bench: %s: %.0f switches in %.2f ms = %.1f M switches/s (%.1f ns each)\n", exchange ? "wave sums (5 exchanges each)" : "barriers", count,
                seconds * 1e3, count / seconds / 1e6, seconds / count * 1e9);
  }
  const unsigned blocks = 500;
  std::vector<float> x(static_cast<size_t>(blocks) * 256), sums(blocks);
  for (auto& v : x) v = awkward_float();
  emu_test_reduce_args args{x.data(), sums.data()};
  for (unsigned threads : {1u, 2u}) {
    halo_emu::set_threads(threads);
    const double seconds = time_launch("emu_test_reduce", {blocks, 1, 1}, {256, 1, 1}, &args, repeats, nullptr);
    std::printf("  bench: 256-thread block reduction (wave butterflies, barrier, wave 0 butterfly): %.2f us per block, %u OS thread%s\n",
                seconds / blocks * 1e6, threads, threads == 1 ? "" : "s");
  }
  halo_emu::set_threads(0);
  std::vector<uint32_t> sink(256);
  emu_test_fault_args empty{sink.data(), 99};
  for (unsigned threads : {32u, 256u}) {
    const double seconds = time_launch("emu_test_fault", {1, 1, 1}, {threads, 1, 1}, &empty, repeats * 20, nullptr);
    std::printf("  bench: launch of one %u-thread block without sync points: %.2f us\n", threads, seconds * 1e6);
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> only;
  bool bench = true;
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    if (arg == "--f16-full") full_f16 = true;
    else if (arg == "--bench") bench_long = true;
    else if (arg == "--no-bench") bench = false;
    else only.push_back(arg);
  }
  const std::pair<const char*, void (*)()> tests[] = {
      {"barrier_shared", test_barrier_shared},
      {"exchange", test_exchange},
      {"wave_reductions", test_wave_reductions},
      {"deadlocks", test_deadlocks},
      {"launch_checks", test_launch_checks},
      {"stack_guard", test_stack_guard},
      {"rounding_modes", test_rounding_modes},
      {"grid_threads", test_grid_threads},
      {"concurrent_launches", test_concurrent_launches},
      {"f16", test_f16},
      {"device_memory", test_device_memory},
      {"device_cap", test_device_cap},
      {"device_faults", test_device_faults},
      {"device_graphs", test_device_kernels_and_graphs},
      {"device_targets", test_device_targets},
      {"benchmark", benchmark},
  };
  int ran = 0;
  for (const auto& [name, test] : tests) {
    if (!only.empty() && std::find(only.begin(), only.end(), name) == only.end()) continue;
    if (!bench && std::strcmp(name, "benchmark") == 0) continue;
    const int failures_before = g_failures;
    const auto start = std::chrono::steady_clock::now();
    test();
    ran++;
    std::printf("%s %s (%.2f s)\n", g_failures == failures_before ? "ok  " : "FAIL", name, seconds_since(start));
    std::fflush(stdout);
  }
  std::printf("emu_test: %d tests, %d checks, %d failures\n", ran, g_checks, g_failures);
  return g_failures == 0 && ran > 0 ? 0 : 1;
}
