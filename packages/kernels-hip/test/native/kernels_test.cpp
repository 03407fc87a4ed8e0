// kernels_test.cpp: every GPU kernel of kernels/halo_kernels.cpp, run under the CPU emulator, against its scalar twin
// (native/twins.cpp) bit for bit (memcmp of every output buffer) on random inputs of awkward sizes, and against plain
// float64 definitions within named tolerances (so a twin that drifted together with its kernel is still caught);
// plus the halo-g2 packer. Exits non-zero on any failure; prints one line per section.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "../../kernels/common.kern.h"  // halo_exp_f64, halo_quantize_code (helpers only: no kernels in it)
#include "../../kernels/emu/emu.h"
#include "../../kernels/halo_kernel_args.h"
#include "../../native/pack_g2.h"
#include "../../native/twins.h"

namespace {

/** f32 sums of `terms` products in another order than float64: relative to Σ|term|, per term of the longest chain. */
constexpr double MAX_REL_ERROR_F32_PER_TERM = 1.2e-7;
/**
 * RMSNorm: the fraction of normed values one ulp from the f32 rounding of the float64 definition (the reference's loop
 * order and glibc's exp, where the kernel sums in a tree and uses V8's exp: each moves a value by an ulp about once in
 * 10^7 – 10^8). Never more than an ulp.
 */
constexpr double MAX_NORM_ULP_FRACTION = 1e-5;
/** Codes vs the float64 definition of the same normed values: at most this fraction one step away (follows the above). */
constexpr double MAX_CODE_MISMATCH_FRACTION = 1e-5;
/** Attention (float-float sums, float64 exp and merge) vs the float64 definition: the fraction of outputs one ulp off. */
constexpr double MAX_ATTENTION_ULP_FRACTION = 1e-4;

int failures = 0;
int checks = 0;
std::mt19937_64 rng(20261207);

void fail(const std::string& what) {
  std::fprintf(stderr, "FAIL %s\n", what.c_str());
  if (++failures > 40) std::exit(1);
}

void check(bool ok, const std::string& what) {
  checks++;
  if (!ok) fail(what);
}

/** Prints one line per section: its checks, and whether any failed. */
struct Section {
  const char* name;
  int checks_before = checks, failures_before = failures;
  explicit Section(const char* section_name) : name(section_name) {}
  ~Section() {
    const int failed = failures - failures_before;
    std::printf("%-44s %4d checks %s\n", name, checks - checks_before, failed == 0 ? "ok" : (std::to_string(failed) + " FAILED").c_str());
  }
};

int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(rng); }
float normal() { return std::normal_distribution<float>(0.0f, 1.0f)(rng); }
float bits_f32(uint32_t bits) {
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}

template <typename T>
bool same_bytes(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && (a.empty() || std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0);
}

/** Index of the first differing element (by bytes), for messages. */
template <typename T>
size_t first_difference(const std::vector<T>& a, const std::vector<T>& b) {
  for (size_t i = 0; i < std::min(a.size(), b.size()); i++)
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return i;
  return a.size();
}

template <typename T>
void check_same(const std::vector<T>& kernel, const std::vector<T>& twin, const std::string& what) {
  const bool ok = same_bytes(kernel, twin);
  std::string message = what;
  if (!ok) {
    const size_t i = first_difference(kernel, twin);
    message += " differs from its twin at element " + std::to_string(i);
    if (i < kernel.size()) {
      char values[96];
      std::snprintf(values, sizeof values, ": %.9g vs %.9g", static_cast<double>(kernel[i]), static_cast<double>(twin[i]));
      message += values;
    }
  }
  check(ok, message);
}

/** Runs kernel `name` under the emulator; false (and a failure) if it is missing or the launch fails. */
template <typename Args>
bool launch(const char* name, halo_emu::Dim3 grid, unsigned threads, const Args& args) {
  const halo_emu::KernelInfo* kernel = halo_emu::find_kernel(name);
  if (kernel == nullptr) {
    fail(std::string("kernel ") + name + " is not registered");
    return false;
  }
  if (kernel->args_bytes != sizeof(Args)) {
    fail(std::string("kernel ") + name + " registered with another argument size");
    return false;
  }
  std::string error;
  halo_emu::Dim3 block;
  block.x = threads;
  if (!halo_emu::run(*kernel, grid, block, &args, &error)) {
    fail(std::string(name) + " launch failed: " + error);
    return false;
  }
  return true;
}

halo_emu::Dim3 grid(unsigned x, unsigned y = 1) {
  halo_emu::Dim3 g;
  g.x = x;
  g.y = y;
  return g;
}

int ceil_div(int a, int b) { return (a + b - 1) / b; }
int round64(int a) { return ceil_div(a, 64) * 64; }

std::string shape(const char* what, std::initializer_list<std::pair<const char*, long long>> fields) {
  std::string s = what;
  for (const auto& f : fields) s += std::string(" ") + f.first + "=" + std::to_string(f.second);
  return s;
}

// ------------------------------------------------------------------------------------------------ halo-g2 packing
void test_pack_g2() {
  const Section section("pack_g2");
  for (int cols : {1, 63, 64, 65, 100, 2560, 6912}) {
    const int rows = uniform(1, 5);
    std::vector<int8_t> trits(static_cast<size_t>(rows) * cols), back(trits.size());
    for (auto& t : trits) t = static_cast<int8_t>(uniform(-1, 1));
    std::vector<uint8_t> packed(halo_gpu::g2_row_bytes(cols) * rows);
    std::string why;
    check(packed.size() == static_cast<size_t>(rows) * ceil_div(cols, 64) * 16, "g2_row_bytes is ceil(cols / 64) · 16");
    check(halo_gpu::g2_pack(trits.data(), rows, cols, packed.data(), &why), "g2_pack of valid trits: " + why);
    check(halo_gpu::g2_count_bad(packed.data(), rows, cols) == 0, "g2_count_bad of a fresh pack");
    check(halo_gpu::g2_unpack(packed.data(), rows, cols, back.data(), &why) && back == trits, shape("g2 round trip", {{"cols", cols}}));
    // The layout as halo_kernel_args.h words it: weight 16i + 4j + b of a chunk at bits 8b + 2j of little-endian word i.
    bool layout = true;
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < ceil_div(cols, 64) * 64; c++) {
        const uint8_t* chunk = packed.data() + static_cast<size_t>(r) * halo_gpu::g2_row_bytes(cols) + (c / 64) * 16;
        const int k = c % 64, i = k / 16, j = (k % 16) / 4, b = k % 4;
        const uint32_t word = chunk[4 * i] | chunk[4 * i + 1] << 8 | chunk[4 * i + 2] << 16 | static_cast<uint32_t>(chunk[4 * i + 3]) << 24;
        const int code = (word >> (8 * b + 2 * j)) & 3;
        layout = layout && code == (c < cols ? trits[static_cast<size_t>(r) * cols + c] + 1 : 1);
      }
    check(layout, shape("g2 layout matches the header's word description", {{"cols", cols}}));
    // A code 3 is found and counted; so is a padding code other than 1.
    std::vector<uint8_t> bad = packed;
    bad[bad.size() / 2] |= 0x0c;  // bits 2–3 of a byte → code 3
    check(
        halo_gpu::g2_count_bad(bad.data(), rows, cols) == 1 && !halo_gpu::g2_validate(bad.data(), rows, cols, &why) && why.find("code 3") != std::string::npos,
        "g2_validate finds one code 3: " + why);
    check(!halo_gpu::g2_unpack(bad.data(), rows, cols, back.data(), &why), "g2_unpack refuses code 3");
    if (cols % 64 != 0) {
      bad = packed;
      bad[bad.size() - 1] = static_cast<uint8_t>((bad[bad.size() - 1] & ~0xc0) | 0x80);  // last weight of the last chunk: code 2 in padding
      check(halo_gpu::g2_count_bad(bad.data(), rows, cols) == 1 && !halo_gpu::g2_validate(bad.data(), rows, cols, &why) &&
                why.find("padding") != std::string::npos,
            "g2_validate finds a padding code 2: " + why);
    }
  }
  std::vector<int8_t> trits = {0, 1, -1, 2};
  std::vector<uint8_t> packed(16);
  std::string why;
  check(!halo_gpu::g2_pack(trits.data(), 1, 4, packed.data(), &why) && why.find("found 2") != std::string::npos, "g2_pack refuses trit 2: " + why);
  check(!halo_gpu::g2_pack(trits.data(), 1, 0, packed.data(), &why), "g2_pack refuses cols 0");
}

// ------------------------------------------------------------------------------------------------ embed
std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (size_t i = 0; i < v.size(); i++) out[i] = halo_twin_f32_to_f16(v[i]);
  return out;
}

void test_embed() {
  const Section section("halo_embed");
  for (int dtype : {HALO_GPU_F32, HALO_GPU_F16, HALO_GPU_BF16})
    for (int hidden : {48, 80, 257, 2560}) {
      const int vocab = 37, n = uniform(1, 9);
      std::vector<float> values(static_cast<size_t>(vocab) * hidden);
      for (auto& v : values) v = normal();
      std::vector<uint16_t> half(values.size());
      for (size_t i = 0; i < values.size(); i++) {
        uint32_t bits;
        std::memcpy(&bits, &values[i], 4);
        half[i] = dtype == HALO_GPU_F16 ? halo_twin_f32_to_f16(values[i]) : static_cast<uint16_t>(bits >> 16);
      }
      std::vector<int32_t> tokens(n);
      for (auto& t : tokens) t = uniform(0, vocab - 1);
      tokens[0] = n > 2 ? -1 : tokens[0];
      if (n > 3) tokens[3] = vocab;  // out of range: a zero row
      std::vector<float> got(static_cast<size_t>(n) * hidden, 7.0f), want = got;
      halo_embed_args args{dtype == HALO_GPU_F32 ? static_cast<const void*>(values.data()) : half.data(), tokens.data(), got.data(), n, hidden, vocab, dtype};
      if (!launch("halo_embed", grid(n), HALO_ROW_THREADS, args)) continue;
      args.x = want.data();
      halo_embed_twin(args);
      check_same(got, want, shape("halo_embed", {{"dtype", dtype}, {"hidden", hidden}, {"n", n}}));
      bool exact = true;
      for (int t = 0; t < n; t++)
        for (int h = 0; h < hidden; h++) {
          const bool valid = tokens[t] >= 0 && tokens[t] < vocab;
          const size_t at = static_cast<size_t>(valid ? tokens[t] : 0) * hidden + h;
          const float expected = !valid                  ? 0.0f
                                 : dtype == HALO_GPU_F32 ? values[at]
                                 : dtype == HALO_GPU_F16 ? halo_twin_f16_to_f32(half[at])
                                                         : bits_f32(static_cast<uint32_t>(half[at]) << 16);
          exact = exact && got[static_cast<size_t>(t) * hidden + h] == expected;
        }
      check(exact, shape("halo_embed rows are the widened table rows", {{"dtype", dtype}, {"hidden", hidden}}));
    }
}

// ------------------------------------------------------------------------------------------------ f16 conversions
void test_f16() {
  const Section section("f16 conversions");
  // The twin's conversions against the emulator's (which halo_gpu.h uses on the CPU) over every f16 and many f32.
  bool widen = true, narrow = true;
  for (uint32_t h = 0; h < 65536; h++) {
    const float a = halo_twin_f16_to_f32(static_cast<uint16_t>(h)), b = halo_emu::f16_to_f32(static_cast<uint16_t>(h));
    widen = widen && std::memcmp(&a, &b, 4) == 0;
  }
  for (int i = 0; i < 2000000; i++) {
    const uint32_t bits = i < 1000000 ? static_cast<uint32_t>(rng()) : (static_cast<uint32_t>(rng()) & 0x8fffffffu) | 0x30000000u;  // all, then near f16 range
    const float f = bits_f32(bits);
    narrow = narrow && halo_twin_f32_to_f16(f) == halo_emu::f32_to_f16(f);
  }
  for (float f : {65504.0f, 65519.99f, 65520.0f, 6.1e-5f, 5.96e-8f, 2.98e-8f, 2.99e-8f, -0.0f, 1e-10f})
    narrow = narrow && halo_twin_f32_to_f16(f) == halo_emu::f32_to_f16(f);
  check(widen, "f16 → f32: twin and emulator agree on all 65536 halves");
  check(narrow, "f32 → f16: twin and emulator agree (random, edge values)");
  check(halo_twin_f32_to_f16(65520.0f) == 0x7c00 && halo_twin_f32_to_f16(65504.0f) == 0x7bff && halo_twin_f32_to_f16(bits_f32(0x33000000u)) == 0 &&
            halo_twin_f32_to_f16(bits_f32(0x33000001u)) == 1,
        "f32 → f16 rounding at the overflow and underflow ties");
}

// ------------------------------------------------------------------------------------------------ norm + quantise
// ------------------------------------------------------------------------------------------------ float64 helpers
// Math.exp of V8 (Node 20) at these x, as bits: inputs where glibc's exp differs by an ulp (the first 12), exp(1) (which
// V8 returns as e exactly), overflow and underflow edges, and a tiny x. halo_exp_f64 must give exactly these.
const uint64_t V8_EXP_VECTORS[][2] = {
    {0xc0030d2180000000ull, 0x3fb7a8d6ccf55670ull}, {0x4002360700000000ull, 0x40237b93488b6c8eull}, {0xbfd8b0f080000000ull, 0x3fe5c1cbefc547d2ull},
    {0x402178a680000000ull, 0x40b84cbf4338a254ull}, {0x3fcacfea80000000ull, 0x3ff3ba77e598803aull}, {0x3ffe87dc20000000ull, 0x401af683225e66b0ull},
    {0xc016cceda0000000ull, 0x3f6b681e9b313a7eull}, {0x40046fc640000000ull, 0x4029bb5219ff217aull}, {0x4012d8ec80000000ull, 0x405bd06ceb6cae8eull},
    {0xc0303d6300000000ull, 0x3e77c48a9671aa28ull}, {0x401b0ac700000000ull, 0x408af8c287f27c3aull}, {0xc01c81e8a0000000ull, 0x3f4a5204c844f0a2ull},
    {0x3ff0000000000000ull, 0x4005bf0a8b145769ull}, {0xbff0000000000000ull, 0x3fd78b56362cef38ull}, {0x3fe0000000000000ull, 0x3ffa61298e1e069cull},
    {0xbfe0000000000000ull, 0x3fe368b2fc6f960aull}, {0xc034000000000000ull, 0x3e21b48655f37267ull}, {0x4085e00000000000ull, 0x7f0d945df4f8ec8eull},
    {0xc087200000000000ull, 0x0000000000000055ull}, {0x3ddb7cdfd9d7bdbbull, 0x3ff000000006df38ull},
};

void test_f64_helpers() {
  const Section section("float64 helpers (exp, exact quantisation)");
  for (const auto& v : V8_EXP_VECTORS) {
    const double x = halo_bits_f64(v[0]), got = halo_exp_f64(x);
    char message[128];
    std::snprintf(message, sizeof message, "halo_exp_f64(%.17g) = %a, V8 gives %a", x, got, halo_bits_f64(v[1]));
    check(halo_f64_bits(got) == v[1], message);
  }
  check(halo_exp_f64(halo_bits_f64(0x7ff0000000000000ull)) == halo_bits_f64(0x7ff0000000000000ull) &&
            halo_exp_f64(-halo_bits_f64(0x7ff0000000000000ull)) == 0.0 && std::isnan(halo_exp_f64(std::nan(""))) &&
            halo_exp_f64(710.0) == halo_bits_f64(0x7ff0000000000000ull) && halo_exp_f64(-746.0) == 0.0,
        "halo_exp_f64 of ±inf, NaN, overflow, underflow");
  // Against glibc over the range SiLU sees: within one ulp everywhere.
  int far = 0;
  for (int i = 0; i < 200000; i++) {
    const double x = -static_cast<double>(normal() * 8.0f), a = halo_exp_f64(x), b = std::exp(x);
    far += std::fabs(a - b) > std::fabs(std::nextafter(b, 0.0) - b) * 1.0000001;
  }
  check(far == 0, "halo_exp_f64 within one ulp of glibc's exp: " + std::to_string(far) + " further");

  // halo_quantize_code against the float64 definition: random products, then products whose f32 rounding lands exactly
  // on a half-integer while the exact product does not (and true ties), where a plain f32 product rounds wrongly.
  auto definition = [](float x, float scale) {
    const double r = std::nearbyint(static_cast<double>(x) * static_cast<double>(scale));
    return std::isnan(r) ? 0 : static_cast<int>(std::max(-128.0, std::min(127.0, r)));
  };
  int wrong = 0, near_ties = 0, f32_wrong = 0;
  for (int i = 0; i < 400000; i++) {
    const float scale = 127.0f / (0.01f + std::fabs(normal()) * 10.0f);
    float x;
    if (i % 2 == 0) {
      x = normal() * 127.0f / scale;
    } else {
      // x = (k + 0.5) / scale rounded to f32, nudged by an ulp or two: x·scale is then within an ulp of k + 0.5.
      const float k = static_cast<float>(uniform(-128, 127));
      x = (k + 0.5f) / scale;
      for (int nudge = uniform(-2, 2); nudge != 0; nudge += nudge > 0 ? -1 : 1) x = std::nextafter(x, nudge > 0 ? 1e30f : -1e30f);
    }
    const float p = x * scale;
    const bool tie = p - std::nearbyint(p) == 0.5f || p - std::nearbyint(p) == -0.5f;
    near_ties += tie && static_cast<double>(x) * scale != static_cast<double>(p);
    const int want = definition(x, scale);
    f32_wrong += static_cast<int>(std::max(-128.0f, std::min(127.0f, std::nearbyint(p)))) != want;
    wrong += halo_quantize_code(x, scale) != want;
  }
  check(wrong == 0, "halo_quantize_code equals the float64 definition: " + std::to_string(wrong) + " differ");
  check(near_ties > 100 && f32_wrong > 50, "the quantisation cases reach inexact ties that a plain f32 product rounds wrongly (" + std::to_string(near_ties) +
                                               " inexact ties, " + std::to_string(f32_wrong) + " wrong in f32)");
  // halo_normed and halo_gated (ReLU²): the f32 fast paths must give the float64 definitions' bits whenever they are
  // taken. Random values over wide magnitudes, then products steered within 2^−50 of an f32 rounding boundary (so the
  // fast path must decline), then zeros, subnormals and non-finite values.
  auto normed_definition = [](float v, double inv, float w) { return static_cast<float>(static_cast<double>(v) * inv * static_cast<double>(w)); };
  auto relu2_definition = [](float gate, float up) {
    const double g = gate > 0.0f ? static_cast<double>(gate) : 0.0;
    return static_cast<float>(g * g * static_cast<double>(up));
  };
  auto same = [](float a, float b) { return std::memcmp(&a, &b, 4) == 0; };
  auto wide = [&]() { return normal() * std::ldexp(1.0f, uniform(-30, 30)); };
  int normed_wrong = 0, relu2_wrong = 0, declined = 0;
  for (int i = 0; i < 1000000; i++) {
    const float v = wide(), w = wide(), gate = wide(), up = wide();
    const double inv = std::fabs(static_cast<double>(normal())) * std::ldexp(1.0, uniform(-20, 20)) + 1e-300;
    const halo_inv_split split = halo_split_inv(inv);
    normed_wrong += !same(halo_normed(v, split, w), normed_definition(v, inv, w));
    relu2_wrong += !same(halo_gated(gate, up, HALO_NORM_RELU2), relu2_definition(gate, up));
  }
  for (int i = 0; i < 200000; i++) {
    // v·inv·w = a midpoint between two floats (within float64 rounding): inv chosen for it.
    const float v = wide(), w = wide(), target = wide();
    const float next = std::nextafter(target, target > 0 ? 1e38f : -1e38f);
    const double midpoint = (static_cast<double>(target) + next) / 2;
    const double inv = std::fabs(midpoint / (static_cast<double>(v) * w));
    if (!(inv > 0x1p-60 && inv < 0x1p60)) continue;
    const float va = (midpoint / (static_cast<double>(v) * w)) < 0 ? -v : v;
    const halo_inv_split split = halo_split_inv(inv);
    float y;
    const float a_hi = va * split.hi;
    declined += !halo_round_ff(a_hi * w, halo_fmaf(halo_fmaf(va, split.lo, halo_fmaf(va, split.hi, -a_hi)), w, halo_fmaf(a_hi, w, -a_hi * w)), &y);
    normed_wrong += !same(halo_normed(va, split, w), normed_definition(va, inv, w));
  }
  const float specials[] = {
      0.0f,         -0.0f, 1e-40f, -3e-39f, 1e-30f, 1.0f, -2.5f, 1e30f, 3e38f, std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
      std::nanf("")};
  for (float a : specials)
    for (float b : specials) {
      for (double inv : {1.0, 316.2, 1e-3, 1e-70, 1e70})
        normed_wrong += !same(halo_normed(a, halo_split_inv(inv), b), normed_definition(a, inv, b)) &&
                        !(std::isnan(halo_normed(a, halo_split_inv(inv), b)) && std::isnan(normed_definition(a, inv, b)));
      relu2_wrong += !same(halo_gated(a, b, HALO_NORM_RELU2), relu2_definition(a, b)) &&
                     !(std::isnan(halo_gated(a, b, HALO_NORM_RELU2)) && std::isnan(relu2_definition(a, b)));
    }
  check(normed_wrong == 0, "halo_normed equals the float64 definition: " + std::to_string(normed_wrong) + " differ");
  check(relu2_wrong == 0, "halo_gated (ReLU²) equals the float64 definition: " + std::to_string(relu2_wrong) + " differ");
  check(declined > 150000, "products at a rounding boundary take the float64 path: " + std::to_string(declined) + " of ~200000");

  check(halo_quantize_code(std::nan(""), 3.0f) == 0 && halo_quantize_code(1e30f, 0.0f) == 0 && halo_quantize_code(200.0f, 1.0f) == 127 &&
            halo_quantize_code(-200.0f, 1.0f) == -128 && halo_quantize_code(2.5f, 1.0f) == 2 && halo_quantize_code(-3.5f, 1.0f) == -4,
        "halo_quantize_code: NaN, clamps, true ties to even");
}

// ------------------------------------------------------------------------------------------------ norm + quantise
void test_norm_quant() {
  const Section section("halo_norm_quant");
  struct Case {
    int width, n, mode;
  };
  const Case cases[] = {{48, 1, HALO_NORM_PLAIN},  {80, 3, HALO_NORM_PLAIN},  {300, 9, HALO_NORM_PLAIN},  {2560, 3, HALO_NORM_PLAIN},
                        {64, 17, HALO_NORM_PLAIN}, {80, 3, HALO_NORM_RELU2},  {1000, 2, HALO_NORM_RELU2}, {6912, 1, HALO_NORM_RELU2},
                        {48, 8, HALO_NORM_SILU},   {1000, 3, HALO_NORM_SILU}, {6912, 2, HALO_NORM_SILU},  {1, 1, HALO_NORM_PLAIN}};
  long normed_total = 0, normed_off = 0, codes_total = 0, codes_off = 0;
  for (const Case& c : cases)
    for (int variant = 0; variant < 3; variant++) {  // 0: codes, 1: codes + normed_out + row_index, 2: normed_out only
      const int width = c.width, n = c.n, padded = round64(width) + (variant == 1 ? 64 : 0);
      const int in_cols = c.mode == HALO_NORM_PLAIN ? width : 2 * width, in_stride = in_cols + uniform(0, 5), rows_in = n + 2;
      const bool gated = c.mode != HALO_NORM_PLAIN;
      std::vector<float> in(static_cast<size_t>(rows_in) * in_stride), weight(width);
      for (auto& v : in) v = normal() * (gated ? 1.5f : 3.0f);
      for (auto& w : weight) w = 0.5f + std::fabs(normal());
      if (width > 10) in[5] = 40.0f;  // an outlier sets the absmax of row 0
      if (c.mode == HALO_NORM_SILU && width > 10) in[6] = -1.0f;  // exp(1): V8's special case
      const std::vector<float> original = in;
      std::vector<float> in_t = in;
      // Gated launches rewrite their rows' gate halves, so their rows must be distinct; plain ones may repeat rows.
      std::vector<int32_t> row_index(n);
      for (int t = 0; t < n; t++) row_index[t] = gated ? (t + 1) % rows_in : uniform(0, rows_in - 1);
      const bool codes_on = variant != 2, normed_on = variant != 0;
      const int chunks = padded / 64;
      std::vector<int8_t> codes(codes_on ? static_cast<size_t>(n) * padded : 0, 99), codes_t = codes;
      std::vector<float> scales(codes_on ? n : 0, -1.0f), scales_t = scales, normed(normed_on ? static_cast<size_t>(n) * width : 0, -1.0f), normed_t = normed;
      std::vector<int32_t> sums(codes_on ? static_cast<size_t>(n) * chunks : 0, 12345), sums_t = sums;
      const double eps = 1e-5;  // a float64 (not an f32 value), as model configs give it
      halo_norm_quant_args args{in.data(),
                                in_stride,
                                variant == 1 ? row_index.data() : nullptr,
                                weight.data(),
                                n,
                                width,
                                padded,
                                c.mode,
                                eps,
                                codes_on ? codes.data() : nullptr,
                                codes_on ? scales.data() : nullptr,
                                codes_on ? sums.data() : nullptr,
                                normed_on ? normed.data() : nullptr};
      const std::string what = shape("halo_norm_quant", {{"width", width}, {"n", n}, {"mode", c.mode}, {"variant", variant}});
      if (!launch("halo_norm_quant", grid(n), HALO_ROW_THREADS, args)) continue;
      halo_norm_quant_args twin = args;
      twin.in = in_t.data();
      twin.codes = codes_on ? codes_t.data() : nullptr;
      twin.scales = codes_on ? scales_t.data() : nullptr;
      twin.chunk_sums = codes_on ? sums_t.data() : nullptr;
      twin.normed_out = normed_on ? normed_t.data() : nullptr;
      halo_norm_quant_twin(twin);
      check_same(in, in_t, what + " in (gated rows rewritten)");
      check_same(codes, codes_t, what + " codes");
      check_same(scales, scales_t, what + " scales");
      check_same(sums, sums_t, what + " chunk_sums");
      check_same(normed, normed_t, what + " normed_out");

      // Independent float64 definition, the reference's loops as written (glibc's exp, the squares summed in order):
      // the kernel's normed values are its f32 roundings (a different summation order or exp moves one by an ulp about
      // once in 10^7), and its codes those of the definition's f32 normed values.
      int code_far = 0, sum_wrong = 0, normed_far = 0, rows_wrong = 0;
      for (int t = 0; t < n; t++) {
        const int r = variant == 1 ? row_index[t] : t;
        const float* row = original.data() + static_cast<size_t>(r) * in_stride;
        std::vector<float> v(width), y(width);
        double squares = 0;
        float absmax = 0;
        for (int i = 0; i < width; i++) {
          const double g = row[i], u = gated ? row[width + i] : 0;
          v[i] = c.mode == HALO_NORM_PLAIN ? row[i]
                                           : static_cast<float>(c.mode == HALO_NORM_RELU2 ? (g > 0 ? g : 0) * (g > 0 ? g : 0) * u : g / (1 + std::exp(-g)) * u);
          squares += static_cast<double>(v[i]) * v[i];
        }
        if (gated)
          for (int i = 0; i < width; i++) rows_wrong += std::fabs(in[static_cast<size_t>(r) * in_stride + i] - v[i]) > std::fabs(v[i]) * 1.2e-7f;
        const double inv = 1 / std::sqrt(squares / width + eps);
        for (int i = 0; i < width; i++) absmax = std::max(absmax, std::fabs(y[i] = static_cast<float>(v[i] * inv * weight[i])));
        const float s = 127.0f / std::max(absmax, HALO_ABSMAX_FLOOR);
        for (int i = 0; i < width; i++) {
          if (!normed_on) break;
          const float got = normed[static_cast<size_t>(t) * width + i];
          normed_total++;
          normed_off += got != y[i];
          normed_far += std::fabs(got - y[i]) > std::fabs(y[i]) * 1.2e-7f;  // more than an ulp
        }
        if (!codes_on) continue;
        for (int i = 0; i < padded; i++) {
          const int got = codes[static_cast<size_t>(t) * padded + i];
          const int want = i < width ? static_cast<int>(std::max(-128.0, std::min(127.0, std::nearbyint(static_cast<double>(y[i]) * s)))) : 0;
          codes_total++;
          codes_off += got != want;
          code_far += std::abs(got - want) > 1;
        }
        for (int ch = 0; ch < chunks; ch++) {
          int sum = 0;
          for (int i = 0; i < 64; i++) sum += codes[static_cast<size_t>(t) * padded + ch * 64 + i];
          sum_wrong += sum != sums[static_cast<size_t>(t) * chunks + ch];
        }
      }
      check(rows_wrong == 0, what + " gated values written back: " + std::to_string(rows_wrong) + " more than an ulp from float64");
      check(normed_far == 0, what + " normed vs float64: " + std::to_string(normed_far) + " more than an ulp away");
      check(code_far == 0, what + " codes vs float64: " + std::to_string(code_far) + " more than one step away");
      check(sum_wrong == 0, what + " chunk_sums are the sums of the codes");
    }
  // Over all cases: the f32 values equal the float64 definition's roundings but for a rare ulp, and so do the codes.
  check(normed_off <= MAX_NORM_ULP_FRACTION * normed_total + 1,
        "normed values one ulp from the float64 definition: " + std::to_string(normed_off) + " of " + std::to_string(normed_total));
  check(codes_off <= MAX_CODE_MISMATCH_FRACTION * codes_total + 1,
        "codes one step from the float64 definition: " + std::to_string(codes_off) + " of " + std::to_string(codes_total));
  std::printf("  (normed one ulp off the float64 definition: %ld of %ld; codes one step off: %ld of %ld)\n", normed_off, normed_total, codes_off, codes_total);
}

// ------------------------------------------------------------------------------------------------ matmul
void test_matmul() {
  const Section section("halo_matmul");
  struct Case {
    int rows, cols, n;
  };
  const Case cases[] = {{8, 64, 1}, {13, 80, 3}, {37, 2560, 1}, {37, 2560, 9}, {20, 6912, 3}, {9, 1000, 17}, {64, 128, 8}, {5, 4096, 2}};
  for (const Case& c : cases)
    for (int scales_kind = 0; scales_kind < 3; scales_kind++) {  // per row, block of one chunk, block of several chunks
      const int rows = c.rows, cols = c.cols, n = c.n, chunks = ceil_div(cols, 64);
      int block_chunks = 0;
      if (scales_kind == 1) block_chunks = 1;
      if (scales_kind == 2) {
        block_chunks = chunks;
        for (int b = 2; b < chunks; b++)
          if (chunks % b == 0) {
            block_chunks = b;
            break;
          }
      }
      const int blocks = block_chunks > 0 ? chunks / block_chunks : 1;
      std::vector<int8_t> trits(static_cast<size_t>(rows) * cols);
      for (auto& t : trits) t = static_cast<int8_t>(uniform(-1, 1));
      std::vector<uint32_t> weights(static_cast<size_t>(rows) * chunks * 4);
      std::string why;
      if (!halo_gpu::g2_pack(trits.data(), rows, cols, reinterpret_cast<uint8_t*>(weights.data()), &why)) fail("g2_pack: " + why);
      std::vector<float> wscales(static_cast<size_t>(rows) * blocks);
      for (auto& s : wscales) s = (0.01f + 2.0f * std::fabs(normal())) * (uniform(0, 3) == 0 ? -1.0f : 1.0f);
      if (block_chunks > 0 && blocks > 1) {
        // Row 1: scales 2^40 apart (the kernel's float64 block-order path); row 2: a zero and a subnormal scale (the
        // same); row 3: all within a factor 2 (its exact integer path, which other rows take when their spread allows).
        wscales[static_cast<size_t>(1) * blocks + blocks - 1] = 1e-12f;
        wscales[static_cast<size_t>(2) * blocks] = 0.0f;
        wscales[static_cast<size_t>(2) * blocks + 1] = bits_f32(0x00012345u);
        for (int b = 0; b < blocks && rows > 3; b++)
          wscales[static_cast<size_t>(3) * blocks + b] = (1.0f + 0.99f * std::fabs(std::sin(static_cast<float>(b)))) * (b % 3 == 1 ? -1.0f : 1.0f);
      }
      std::vector<int8_t> codes(static_cast<size_t>(n) * chunks * 64, 0);
      const bool extreme = c.rows == 5;  // every activation −128 and trit +1 in row 0: the int range at its widest
      for (int t = 0; t < n; t++)
        for (int k = 0; k < cols; k++) codes[static_cast<size_t>(t) * chunks * 64 + k] = static_cast<int8_t>(extreme ? -128 : uniform(-128, 127));
      if (extreme)
        for (int k = 0; k < cols; k++) trits[k] = 1;
      if (extreme && !halo_gpu::g2_pack(trits.data(), rows, cols, reinterpret_cast<uint8_t*>(weights.data()), &why)) fail("g2_pack: " + why);
      std::vector<int32_t> sums(static_cast<size_t>(n) * chunks, 0);
      for (int t = 0; t < n; t++)
        for (int k = 0; k < chunks * 64; k++) sums[static_cast<size_t>(t) * chunks + k / 64] += codes[static_cast<size_t>(t) * chunks * 64 + k];
      std::vector<float> ascales(n);
      for (auto& s : ascales) s = 1.0f + 50.0f * std::fabs(normal());
      for (int accumulate = 0; accumulate < 2; accumulate++) {
        const int y_stride = rows + uniform(0, 3);
        std::vector<float> y(static_cast<size_t>(n) * y_stride);
        for (auto& v : y) v = normal();
        const std::vector<float> y0 = y;
        std::vector<float> y_t = y;
        halo_matmul_args args{weights.data(), wscales.data(), rows, chunks,   block_chunks, codes.data(),
                              ascales.data(), sums.data(),    n,    y.data(), y_stride,     accumulate};
        const std::string what = shape("halo_matmul", {{"rows", rows}, {"cols", cols}, {"n", n}, {"block_chunks", block_chunks}, {"accumulate", accumulate}});
        if (!launch("halo_matmul", grid(ceil_div(rows, HALO_MATMUL_ROWS), ceil_div(n, HALO_MATMUL_TOKENS)), HALO_MATMUL_THREADS, args)) continue;
        args.y = y_t.data();
        halo_matmul_twin(args);
        check_same(y, y_t, what);
        // The reference's definition over the unpacked trits (not the halo-g2 bytes): per row (dot · ws) / as, per block
        // Σ_b dot_b · ws_b in block order in float64 (zero dots skipped), then / as; rounded once to f32, then added to
        // y0 in f32 when accumulating. Bit for bit.
        int wrong = 0;
        bool untouched = true;
        for (int t = 0; t < n; t++) {
          for (int r = 0; r < rows; r++) {
            auto dot_of = [&](int k0, int k1) {
              long long dot = 0;
              for (int k = k0; k < std::min(cols, k1); k++) dot += trits[static_cast<size_t>(r) * cols + k] * codes[static_cast<size_t>(t) * chunks * 64 + k];
              return dot;
            };
            double value = 0;
            if (block_chunks == 0) {
              value = static_cast<double>(dot_of(0, cols)) * wscales[r] / ascales[t];
            } else {
              for (int b = 0; b < blocks; b++) {
                const long long dot = dot_of(b * block_chunks * 64, (b + 1) * block_chunks * 64);
                if (dot != 0) value += static_cast<double>(dot) * wscales[static_cast<size_t>(r) * blocks + b];
              }
              value /= ascales[t];
            }
            const float want = accumulate ? y0[static_cast<size_t>(t) * y_stride + r] + static_cast<float>(value) : static_cast<float>(value);
            wrong += y[static_cast<size_t>(t) * y_stride + r] != want;
          }
          for (int r = rows; r < y_stride; r++) untouched = untouched && y[static_cast<size_t>(t) * y_stride + r] == y0[static_cast<size_t>(t) * y_stride + r];
        }
        check(wrong == 0, what + " vs the float64 definition: " + std::to_string(wrong) + " outputs differ");
        check(untouched, what + " leaves y columns ≥ rows alone");
      }
    }
}

// ------------------------------------------------------------------------------------------------ rope + KV write
std::vector<double> rope_table(int context, int head_dim, double theta) {
  const int half = head_dim / 2;
  std::vector<double> table(static_cast<size_t>(context) * half * 2);
  for (int p = 0; p < context; p++)
    for (int i = 0; i < half; i++) {
      const double angle = p * std::pow(theta, -2.0 * i / head_dim);
      table[(static_cast<size_t>(p) * half + i) * 2] = std::cos(angle);
      table[(static_cast<size_t>(p) * half + i) * 2 + 1] = std::sin(angle);
    }
  return table;
}

void test_rope_kv() {
  const Section section("halo_rope_kv");
  struct Case {
    int heads, kv_heads, head_dim, n;
  };
  const Case cases[] = {{4, 2, 16, 1}, {4, 4, 64, 3}, {6, 2, 128, 9}, {20, 5, 128, 2}, {2, 1, 64, 17}, {3, 3, 2, 1}};
  for (const Case& c : cases)
    for (int kv_dtype : {HALO_GPU_F32, HALO_GPU_F16}) {
      const int context = 150, layers = 3, layer = 1, slots_count = 3;
      const int q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim, width = q_dim + 2 * kv_dim, stride = width + uniform(0, 3);
      const std::vector<double> rope = rope_table(context, c.head_dim, 500000.0);
      std::vector<float> qkv(static_cast<size_t>(c.n) * stride);
      for (auto& v : qkv) v = normal();
      const std::vector<float> original = qkv;
      // Distinct (slot, position) per row: two rows writing one cache entry would race on a GPU.
      std::vector<int32_t> positions(c.n), slots(c.n);
      for (int t = 0; t < c.n; t++) {
        bool taken = true;
        while (taken) {
          positions[t] = t == 0 ? context - 1 : uniform(0, context - 1);
          slots[t] = uniform(0, slots_count - 1);
          taken = false;
          for (int u = 0; u < t; u++) taken = taken || (positions[u] == positions[t] && slots[u] == slots[t]);
        }
      }
      if (c.n > 2) positions[2] = context;  // out of range: the row is left alone
      const size_t cache_elems = static_cast<size_t>(slots_count) * layers * context * kv_dim;
      const size_t element = kv_dtype == HALO_GPU_F16 ? 2 : 4;
      std::vector<uint8_t> keys(cache_elems * element, 0xab), values(cache_elems * element, 0xcd);
      std::vector<uint8_t> keys_t = keys, values_t = values;
      std::vector<float> qkv_t = qkv;
      halo_rope_kv_args args{qkv.data(), stride,      positions.data(), slots.data(), rope.data(), c.n,     c.heads, c.kv_heads,
                             c.head_dim, keys.data(), values.data(),    layer,        layers,      context, kv_dtype};
      const std::string what =
          shape("halo_rope_kv", {{"heads", c.heads}, {"kv_heads", c.kv_heads}, {"head_dim", c.head_dim}, {"n", c.n}, {"kv_dtype", kv_dtype}});
      if (!launch("halo_rope_kv", grid(c.n), HALO_ROW_THREADS, args)) continue;
      args.qkv = qkv_t.data();
      args.keys = keys_t.data();
      args.values = values_t.data();
      halo_rope_kv_twin(args);
      check_same(qkv, qkv_t, what + " qkv");
      check_same(keys, keys_t, what + " keys");
      check_same(values, values_t, what + " values");
      // The reference's rotation (float64, each result rounded once to f32) with the same cos/sin, bit for bit, and the
      // cache holding k / v (rounded to f16 for an f16 cache).
      int wrong = 0;
      bool stored = true;
      const int half = c.head_dim / 2;
      for (int t = 0; t < c.n; t++) {
        const bool valid = positions[t] < context;
        const size_t cache = ((static_cast<size_t>(slots[t]) * layers + layer) * context + (valid ? positions[t] : 0)) * kv_dim;
        for (int head = 0; head < c.heads + c.kv_heads; head++)
          for (int i = 0; i < half; i++) {
            const size_t at = static_cast<size_t>(t) * stride + head * c.head_dim + i;
            const double cs = rope[(static_cast<size_t>(valid ? positions[t] : 0) * half + i) * 2],
                         sn = rope[(static_cast<size_t>(valid ? positions[t] : 0) * half + i) * 2 + 1];
            const double x1 = original[at], x2 = original[at + half];
            const float y1 = static_cast<float>(valid ? x1 * cs - x2 * sn : x1), y2 = static_cast<float>(valid ? x1 * sn + x2 * cs : x2);
            wrong += (qkv[at] != y1) + (qkv[at + half] != y2);
            if (valid && head >= c.heads) {
              const size_t e = cache + (head - c.heads) * c.head_dim + i;
              auto load = [&](const std::vector<uint8_t>& buf, size_t idx) {
                if (kv_dtype == HALO_GPU_F16) {
                  uint16_t h;
                  std::memcpy(&h, buf.data() + idx * 2, 2);
                  return halo_twin_f16_to_f32(h);
                }
                float f;
                std::memcpy(&f, buf.data() + idx * 4, 4);
                return f;
              };
              auto rounded = [&](float v) { return kv_dtype == HALO_GPU_F16 ? halo_twin_f16_to_f32(halo_twin_f32_to_f16(v)) : v; };
              stored = stored && load(keys, e) == rounded(qkv[at]) && load(keys, e + half) == rounded(qkv[at + half]);
            }
          }
        if (valid)
          for (int e = 0; e < kv_dim; e++) {
            const float v = original[static_cast<size_t>(t) * stride + q_dim + kv_dim + e];
            if (kv_dtype == HALO_GPU_F16) {
              uint16_t h;
              std::memcpy(&h, values.data() + (cache + e) * 2, 2);
              stored = stored && h == halo_twin_f32_to_f16(v);
            } else {
              float f;
              std::memcpy(&f, values.data() + (cache + e) * 4, 4);
              stored = stored && f == v;
            }
          }
      }
      check(wrong == 0, what + " vs the float64 definition: " + std::to_string(wrong) + " values differ");
      check(stored, what + " stores rotated k and v at (slot, layer, position)");
    }
}

// ------------------------------------------------------------------------------------------------ attention + merge
void test_attention() {
  const Section section("halo_attention + halo_attention_merge");
  long attention_total = 0, attention_off = 0;
  struct Case {
    int heads, kv_heads, head_dim, tile;
    std::vector<int> positions;
  };
  const Case cases[] = {{4, 2, 16, 64, {0}},         {4, 4, 64, 64, {63, 64, 65}}, {8, 2, 128, 64, {130, 0, 199, 64, 127, 5, 66, 190, 31}},
                        {6, 3, 64, 16, {47, 48, 9}}, {2, 1, 256, 64, {100}},       {5, 5, 48, 32, {1, 2, 33}},
                        {20, 5, 128, 64, {140}},     {3, 1, 20, 64, {70, 3}}};  // head_dim 20: f16 rows not 16-byte aligned
  for (const Case& c : cases)
    for (int kv_dtype : {HALO_GPU_F32, HALO_GPU_F16}) {
      const int n = static_cast<int>(c.positions.size()), context = 200, layers = 2, layer = 1, slots_count = 4;
      const int q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim, q_stride = q_dim + 2 * kv_dim + 1;
      int longest = 0;
      for (int p : c.positions) longest = std::max(longest, p + 1);
      const int splits = ceil_div(longest, c.tile) + 1;  // one split past every row: it must come out empty
      const size_t cache_elems = static_cast<size_t>(slots_count) * layers * context * kv_dim;
      std::vector<float> kf(cache_elems), vf(cache_elems);
      for (auto& v : kf) v = normal();
      for (auto& v : vf) v = normal();
      std::vector<uint16_t> kh = to_f16(kf), vh = to_f16(vf);
      if (kv_dtype == HALO_GPU_F16)
        for (size_t i = 0; i < cache_elems; i++) {
          kf[i] = halo_twin_f16_to_f32(kh[i]);
          vf[i] = halo_twin_f16_to_f32(vh[i]);
        }
      std::vector<float> q(static_cast<size_t>(n) * q_stride);
      for (auto& v : q) v = 2.0f * normal();
      std::vector<int32_t> positions(c.positions.begin(), c.positions.end()), slots(n);
      for (auto& s : slots) s = uniform(0, slots_count - 1);
      const void* keys = kv_dtype == HALO_GPU_F16 ? static_cast<const void*>(kh.data()) : kf.data();
      const void* values = kv_dtype == HALO_GPU_F16 ? static_cast<const void*>(vh.data()) : vf.data();
      const size_t partial_size = static_cast<size_t>(n) * c.heads * splits * (c.head_dim + 2);
      std::vector<double> partial(partial_size, 9.0), partial_t = partial;
      const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));
      halo_attention_args args{q.data(),   q_stride,   keys,  values, kv_dtype, positions.data(), slots.data(), n,     c.heads,
                               c.kv_heads, c.head_dim, layer, layers, context,  c.tile,           splits,       scale, partial.data()};
      const std::string what =
          shape("halo_attention", {{"heads", c.heads}, {"kv_heads", c.kv_heads}, {"head_dim", c.head_dim}, {"n", n}, {"tile", c.tile}, {"kv_dtype", kv_dtype}});
      if (!launch("halo_attention", grid(n * c.heads, splits), HALO_ATTN_THREADS, args)) continue;
      args.partial = partial_t.data();
      halo_attention_twin(args);
      check_same(partial, partial_t, what + " partials");
      bool empty_ok = true;
      for (int bx = 0; bx < n * c.heads; bx++) {
        const double* last = partial.data() + (static_cast<size_t>(bx) * splits + splits - 1) * (c.head_dim + 2);
        empty_ok = empty_ok && std::isinf(last[0]) && last[0] < 0 && last[1] == 0.0;
        for (int d = 0; d < c.head_dim; d++) empty_ok = empty_ok && last[2 + d] == 9.0;  // the fill: o is not written
      }
      check(empty_ok, what + " a split past the row writes only m = −inf, l = 0 (o left as it was)");

      const int out_stride = q_dim + 3;
      std::vector<float> out(static_cast<size_t>(n) * out_stride, 5.0f), out_t = out;
      halo_attention_merge_args merge{partial.data(), n, c.heads, c.head_dim, splits, out.data(), out_stride};
      if (!launch("halo_attention_merge", grid(n * c.heads), HALO_ATTN_THREADS, merge)) continue;
      merge.out = out_t.data();
      halo_attention_merge_twin(merge);
      check_same(out, out_t, what + " merged");
      // The merge must not read an empty split's o (the attention kernel leaves it unwritten): NaN there, in every
      // split past its row's last position, must give the same bits as before, in the kernel and in the twin.
      std::vector<double> poisoned = partial;
      int dead = 0;
      for (int bx = 0; bx < n * c.heads; bx++)
        for (int s = positions[bx / c.heads] / c.tile + 1; s < splits; s++, dead++)
          for (int d = 0; d < c.head_dim; d++) poisoned[(static_cast<size_t>(bx) * splits + s) * (c.head_dim + 2) + 2 + d] = NAN;
      check(dead >= n * c.heads, what + " every row has a split past its last position");
      std::vector<float> out_p(out.size(), 5.0f), out_pt = out_p;
      merge.partial = poisoned.data();
      merge.out = out_p.data();
      if (!launch("halo_attention_merge", grid(n * c.heads), HALO_ATTN_THREADS, merge)) continue;
      merge.out = out_pt.data();
      halo_attention_merge_twin(merge);
      check_same(out_p, out, what + " merged with NaN in the empty splits' o");
      check_same(out_pt, out, what + " merged (twin) with NaN in the empty splits' o");
      // The reference's float64 softmax attention over positions 0 … last of the row's slot (the kernel's KV values,
      // widened; glibc's exp): the kernel's outputs are its f32 roundings but for a rare ulp (float-float sums keep
      // ~2^−45), never further; counted over all cases below.
      int far = 0;
      const int group = c.heads / c.kv_heads;
      for (int t = 0; t < n; t++)
        for (int h = 0; h < c.heads; h++) {
          const size_t base = (static_cast<size_t>(slots[t]) * layers + layer) * context * kv_dim + static_cast<size_t>(h / group) * c.head_dim;
          std::vector<double> scores(positions[t] + 1), acc(c.head_dim, 0.0);
          double top = -INFINITY, sum = 0, vmax = 0;
          for (int p = 0; p <= positions[t]; p++) {
            double dot = 0;
            for (int d = 0; d < c.head_dim; d++)
              dot += static_cast<double>(q[static_cast<size_t>(t) * q_stride + h * c.head_dim + d]) * kf[base + static_cast<size_t>(p) * kv_dim + d];
            scores[p] = dot / std::sqrt(static_cast<double>(c.head_dim));
            top = std::max(top, scores[p]);
          }
          for (int p = 0; p <= positions[t]; p++) {
            const double w = std::exp(scores[p] - top);
            sum += w;
            for (int d = 0; d < c.head_dim; d++) {
              acc[d] += w * vf[base + static_cast<size_t>(p) * kv_dim + d];
              vmax = std::max(vmax, std::fabs(static_cast<double>(vf[base + static_cast<size_t>(p) * kv_dim + d])));
            }
          }
          for (int d = 0; d < c.head_dim; d++) {
            const float got = out[static_cast<size_t>(t) * out_stride + h * c.head_dim + d], want = static_cast<float>(acc[d] / sum);
            attention_total++;
            attention_off += got != want;
            far += std::fabs(got - want) > std::fabs(want) * 1.2e-7f + vmax * 1e-12;
          }
        }
      check(far == 0, what + " vs float64: " + std::to_string(far) + " outputs more than an ulp away");
      bool pad = true;
      for (int t = 0; t < n; t++)
        for (int i = q_dim; i < out_stride; i++) pad = pad && out[static_cast<size_t>(t) * out_stride + i] == 5.0f;
      check(pad, what + " merge leaves columns ≥ heads·head_dim alone");
    }
  check(attention_off <= MAX_ATTENTION_ULP_FRACTION * attention_total + 1,
        "attention outputs one ulp from the float64 definition: " + std::to_string(attention_off) + " of " + std::to_string(attention_total));
  std::printf("  (attention outputs one ulp off the float64 definition: %ld of %ld)\n", attention_off, attention_total);
}

// ------------------------------------------------------------------------------------------------ LM head
void test_lm_head() {
  const Section section("halo_lm_head");
  struct Case {
    int vocab, hidden, n;
  };
  const Case cases[] = {{37, 48, 1}, {37, 80, 3}, {300, 100, 9}, {19, 66, 17}, {9, 2560, 2}, {17, 255, 8}, {8, 1, 1}};
  for (const Case& c : cases)
    for (int dtype : {HALO_GPU_F32, HALO_GPU_F16, HALO_GPU_BF16}) {
      std::vector<float> table(static_cast<size_t>(c.vocab) * c.hidden);
      for (auto& v : table) v = normal() * 0.05f;
      std::vector<uint16_t> half(table.size());
      for (size_t i = 0; i < table.size(); i++) {
        uint32_t bits;
        std::memcpy(&bits, &table[i], 4);
        half[i] = dtype == HALO_GPU_F16 ? halo_twin_f32_to_f16(table[i]) : static_cast<uint16_t>(bits >> 16);
        table[i] = dtype == HALO_GPU_F32 ? table[i] : dtype == HALO_GPU_F16 ? halo_twin_f16_to_f32(half[i]) : bits_f32(static_cast<uint32_t>(half[i]) << 16);
      }
      std::vector<float> x(static_cast<size_t>(c.n) * c.hidden);
      for (auto& v : x) v = normal();
      std::vector<float> logits(static_cast<size_t>(c.n) * c.vocab, 3.0f), logits_t = logits;
      halo_lm_head_args args{
          dtype == HALO_GPU_F32 ? static_cast<const void*>(table.data()) : half.data(), dtype, x.data(), c.n, c.hidden, c.vocab, logits.data()};
      const std::string what = shape("halo_lm_head", {{"vocab", c.vocab}, {"hidden", c.hidden}, {"n", c.n}, {"dtype", dtype}});
      if (!launch("halo_lm_head", grid(ceil_div(c.vocab, HALO_HEAD_ROWS), ceil_div(c.n, HALO_HEAD_TOKENS)), HALO_HEAD_THREADS, args)) continue;
      args.logits = logits_t.data();
      halo_lm_head_twin(args);
      check_same(logits, logits_t, what);
      double worst = 0;
      for (int t = 0; t < c.n; t++)
        for (int v = 0; v < c.vocab; v++) {
          double sum = 0, magnitude = 0;
          for (int h = 0; h < c.hidden; h++) {
            const double p = static_cast<double>(table[static_cast<size_t>(v) * c.hidden + h]) * x[static_cast<size_t>(t) * c.hidden + h];
            sum += p;
            magnitude += std::fabs(p);
          }
          const double bound = (ceil_div(c.hidden, 32) + 6) * MAX_REL_ERROR_F32_PER_TERM * magnitude + 1e-30;
          worst = std::max(worst, std::fabs(logits[static_cast<size_t>(t) * c.vocab + v] - sum) / bound);
        }
      check(worst <= 1.0, what + " vs float64: " + std::to_string(worst) + " of the bound");
    }
}

// ------------------------------------------------------------------------------------------------ top-k / argmax
void test_topk() {
  const Section section("halo_topk + halo_topk_merge");
  const float inf = INFINITY, nan = std::nanf(""), flt_max = bits_f32(0x7f7fffffu);
  struct Case {
    int vocab, n, k, argmax, style;  // style 0: normal; 1: few distinct levels (ties); 2: specials mixed in; 3: nothing rankable
  };
  const Case cases[] = {{1, 1, 1, 1, 0},     {5, 3, 1, 1, 2},     {100, 2, 1, 1, 1},   {4096, 1, 1, 1, 2},  {4097, 3, 1, 1, 0},   {9000, 2, 1, 1, 3},
                        {5, 2, 5, 0, 2},     {100, 3, 40, 0, 1},  {4097, 1, 64, 0, 2}, {9000, 2, 40, 0, 1}, {9000, 1, 2, 0, 2},   {4096, 1, 64, 0, 1},
                        {20000, 1, 1, 1, 1}, {20000, 1, 8, 0, 2}, {64, 1, 64, 0, 2},   {70, 2, 3, 0, 3},    {128256, 1, 1, 1, 2}, {128256, 1, 40, 0, 0}};
  for (const Case& c : cases) {
    std::vector<float> logits(static_cast<size_t>(c.n) * c.vocab);
    for (auto& v : logits) {
      if (c.style == 1) v = static_cast<float>(uniform(-3, 3)) * 0.5f;
      else if (c.style == 3) v = uniform(0, 1) != 0 ? nan : -inf;
      else v = normal() * 4.0f;
      if (c.style == 2) {
        const int r = uniform(0, 19);
        if (r == 0) v = nan;
        if (r == 1) v = -inf;
        if (r == 2) v = inf;
        if (r == 3) v = flt_max;
        if (r == 4) v = -0.0f;
        if (r == 5) v = 0.0f;
      }
    }
    if (c.style == 2 && c.vocab > 3) {  // FLT_MAX at a lower id beats +inf at a higher one
      logits[c.vocab - 1] = inf;
      logits[1] = flt_max;
    }
    const int k = c.argmax != 0 ? 1 : c.k;
    const int blocks = ceil_div(c.vocab, HALO_TOPK_SPAN);
    std::vector<int32_t> cand_ids(static_cast<size_t>(c.n) * blocks * k, 77), cand_ids_t = cand_ids;
    std::vector<float> cand_values(cand_ids.size(), 7.0f), cand_values_t = cand_values;
    halo_topk_args args{logits.data(), c.n, c.vocab, k, blocks, c.argmax, cand_ids.data(), cand_values.data()};
    const std::string what = shape("halo_topk", {{"vocab", c.vocab}, {"n", c.n}, {"k", k}, {"argmax", c.argmax}, {"style", c.style}});
    if (!launch("halo_topk", grid(c.n, blocks), HALO_TOPK_THREADS, args)) continue;
    args.cand_ids = cand_ids_t.data();
    args.cand_values = cand_values_t.data();
    halo_topk_twin(args);
    check_same(cand_ids, cand_ids_t, what + " candidate ids");
    check_same(cand_values, cand_values_t, what + " candidate values");

    std::vector<int32_t> ids(static_cast<size_t>(c.n) * k, 55), ids_t = ids, ids_def = ids;
    std::vector<float> values(ids.size(), 5.0f), values_t = values, values_def = values;
    halo_topk_merge_args merge{cand_ids.data(), cand_values.data(), c.n, k, blocks, c.argmax, ids.data(), values.data()};
    if (!launch("halo_topk_merge", grid(c.n), HALO_TOPK_THREADS, merge)) continue;
    merge.ids = ids_t.data();
    merge.values = values_t.data();
    halo_topk_merge_twin(merge);
    check_same(ids, ids_t, what + " merged ids");
    check_same(values, values_t, what + " merged values");
    halo_topk_rows_definition(logits.data(), c.n, c.vocab, k, c.argmax, ids_def.data(), values_def.data());
    check_same(ids, ids_def, what + " ids vs the contract's " + (c.argmax != 0 ? "argmaxRows" : "topKRows"));
    check_same(values, values_def, what + " values vs the contract's definition");
    if (c.style == 3 && c.argmax != 0) check(ids[0] == -1, what + " a row of NaN / −inf has no argmax (−1)");
  }
}

}  // namespace

int main() {
  test_pack_g2();
  test_f16();
  test_f64_helpers();
  test_embed();
  test_norm_quant();
  test_matmul();
  test_rope_kv();
  test_attention();
  test_lm_head();
  test_topk();
  if (failures > 0) {
    std::fprintf(stderr, "kernels_test: %d of %d checks FAILED\n", failures, checks);
    return 1;
  }
  std::printf("kernels_test: all %d checks passed\n", checks);
  return 0;
}
