// gpu_check.cpp: the real-GPU check of @halo/kernels-hip. bench/gpu-check.sh builds it (g++, no Node.js) and runs it on
// a lent GPU; CI runs it on the CPU emulator with --tiny (scripts/native-test.mjs) so the harness keeps compiling and
// running where no GPU exists. Five sections, every record naming the GPU and its measured read bandwidth:
//   1. conformance  every kernel on the device against its scalar twin on the CPU (native/twins.cpp), random awkward
//                   sizes plus the 2B-4T shapes, bit for bit (see "exactness" below)
//   2. model        a tiny random model (gpu_model.h's host API) on the device against the same model on the emulator:
//                   greedy tokens over 32 steps, logits bit for bit, graphs on and off, f16 and f32 KV, KV export / import
//   3. bandwidth    device read bandwidth (a vectorised read-and-reduce kernel over 1 GiB, best of N) and D2D copy
//   4. gemv         halo_matmul n = 1 on the 2B-4T shapes, weights rotating over ≥ 256 MiB so nothing is L2-resident
//   5. e2e          the 2B-4T shape with random ternary weights: decode at context 64 and ~1024, prefill of 512, launches
//                   per token, graphs on / off, bytes per token and the share of the bandwidth roofline
//
//   gpu_check [--device cuda|hip|emulator] [--code-dir DIR] [--bench-code-dir DIR] [--tiny] [--out FILE]
//             [--only conformance,model,bandwidth,gemv,e2e] [--emu-threads N] [--seed N]
//
// --code-dir holds halo_kernels.<target>.{cubin,hsaco,ptx} built from kernels/halo_kernels.cpp exactly as shipped;
// --bench-code-dir (default <code-dir>/bench) holds the code object of test/native/bandwidth.kern.h under the same file
// name (the device opens halo_kernels.<target>.*). The emulator runs the kernels compiled into this binary.
// Timing: the Device interface has no events, so times are host clocks around queued work followed by synchronize(),
// with enough work per sample (≥ ~1 ms on a GPU) that the one synchronize costs < 2 %; GEMV times per launch include
// the gap between consecutive kernels (what a decode step pays), and the no-op kernel's time per launch is reported
// beside them.
// Exit status: 0 every conformance and model check passed; 1 one failed, or a section could not run (a device error; the
// other sections still run and print their timings); 2 bad options or the device did not open. Performance targets are
// reported (met / NOT met), never an exit status.
#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "bandwidth.kern.h"  // the bench kernels, registered with the emulator (this file is plain C++)
#include "device.h"
#include "emu/emu.h"
#include "gpu_model.h"
#include "halo_kernel_args.h"
#include "pack_g2.h"
#include "twins.h"

namespace {

using halo_gpu::Device;
using halo_gpu::DevicePtr;
using halo_gpu::Dim3;
using halo_gpu::GpuModel;
using halo_gpu::KernelHandle;
using halo_gpu::ModelConfig;
using halo_gpu::ModelInfo;
using halo_gpu::ModelResult;
using halo_gpu::Result;
using halo_gpu::StepOutput;
using halo_gpu::StepRequest;
using halo_gpu::StepResult;

// ------------------------------------------------------------------------------------------------ exactness
// Every kernel must match its twin BIT FOR BIT on the GPU too, and so the whole model must match the emulator: the twins
// repeat each kernel's IEEE-754 operations in the same order, contraction is off (--fmad=false / -ffp-contract=off),
// nvcc's defaults round f32 division and sqrt correctly (-prec-div, __fsqrt_rn) and keep subnormals (-ftz=false), float64
// sqrt is __dsqrt_rn / LLVM's correctly rounded expansion, and no kernel calls a hardware transcendental any more: SiLU
// and attention take their exponentials from halo_exp_f64.h (V8's exp in plain float64 + − · /), the same code on every
// target. So no numeric tolerance is left; a difference is a real finding (a flag or a kernel drifted), not noise.
// Where a GPU may legitimately differ, and why no check here meets it:
//   - the sign and payload of a NaN an operation CREATES (IEEE 754 leaves them open: x86 makes 0xffc00000, CUDA
//     0x7fffffff, and __float2half_rn(NaN) is 0x7fff where the twin keeps the payload). The only NaNs here are top-k's
//     input logits, which the kernels copy and never compute, so the comparisons stay memcmp.
//   - timings: the performance targets below are reported, never an exit status.
// When a check fails, its detail still measures how far off the device is (ulps, relative errors) to tell a rounding
// drift from a broken kernel.

// Performance targets (issue 17, "Performance"): reported, never an exit status.
constexpr double kGemvTargetShare = 0.85;
constexpr double kDecodeTargetShare = 0.50;

// ------------------------------------------------------------------------------------------------ options, output
struct Options {
  std::string device = "cuda";
  std::string code_dir;
  std::string bench_code_dir;
  std::string out;
  bool tiny = false;
  unsigned emu_threads = 0;
  uint64_t seed = 20261207;
  std::vector<std::string> only;
  bool wants(const char* section) const { return only.empty() || std::find(only.begin(), only.end(), section) != only.end(); }
};

double now_s() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

std::string fmt(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* format, ...) {
  char buffer[1024];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  return buffer;
}

/** One JSON object, fields in insertion order. */
class Json {
 public:
  Json& str(const char* key, const std::string& value) {
    field(key);
    body_ += '"';
    for (const char ch : value) {
      if (ch == '"' || ch == '\\') body_ += '\\', body_ += ch;
      else if (static_cast<unsigned char>(ch) < 0x20) body_ += fmt("\\u%04x", ch);
      else body_ += ch;
    }
    body_ += '"';
    return *this;
  }
  Json& num(const char* key, double value) {
    field(key);
    body_ += std::isfinite(value) ? fmt("%.6g", value) : std::string("null");
    return *this;
  }
  Json& boolean(const char* key, bool value) {
    field(key);
    body_ += value ? "true" : "false";
    return *this;
  }
  std::string text() const { return "{" + body_ + "}"; }

 private:
  void field(const char* key) {
    if (!body_.empty()) body_ += ',';
    body_ += fmt("\"%s\":", key);
  }
  std::string body_;
};

/** Where results go: readable lines on stdout, JSON lines to --out, failures counted for the exit status. */
struct Report {
  FILE* json = nullptr;
  std::string kind, gpu, arch;
  double read_bw = NAN;  // bytes / s, once section 3 has measured it
  int failures = 0, checks = 0;
  std::vector<std::string> summary;  // the closing summary, one line each

  void emit(const char* section, Json fields) {
    if (json == nullptr) return;
    Json head;
    head.str("section", section).str("gpu", gpu).str("arch", arch).str("device", kind).num("read_GBps", read_bw / 1e9);
    std::string text = head.text();
    const std::string rest = fields.text();
    if (rest.size() > 2) text = text.substr(0, text.size() - 1) + "," + rest.substr(1);
    std::fprintf(json, "%s\n", text.c_str());
    std::fflush(json);
  }
  /** One conformance / model check: printed, counted, emitted. */
  void check(const char* section, bool ok, const std::string& what, const std::string& detail, Json fields = Json()) {
    checks++;
    if (!ok) failures++;
    std::printf("  %-4s %s%s%s\n", ok ? "ok" : "FAIL", what.c_str(), detail.empty() ? "" : "  ", detail.c_str());
    std::fflush(stdout);
    emit(section, fields.str("check", what).boolean("ok", ok).str("detail", detail));
  }
  /** A failure to run something at all (a device error): counted as a failure. */
  void error(const char* section, const std::string& what) { check(section, false, what, "did not run"); }
};

// ------------------------------------------------------------------------------------------------ device helpers
int ceil_div(int a, int b) { return (a + b - 1) / b; }
int round64(int a) { return ceil_div(a, 64) * 64; }

/** Device buffers of one case, released together; the first failure is kept (later calls become no-ops). */
class Arena {
 public:
  explicit Arena(Device& device) : device_(device) {}
  ~Arena() {
    for (DevicePtr p : owned_) device_.release(p);
  }
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;

  DevicePtr alloc(std::size_t bytes) {
    if (!ok()) return nullptr;
    DevicePtr p = nullptr;
    Result r = device_.alloc(std::max<std::size_t>(bytes, 16), &p);
    if (!r.ok()) {
      error_ = "alloc(" + std::to_string(bytes) + "): " + r.message;
      return nullptr;
    }
    owned_.push_back(p);
    return p;
  }
  /** A device copy of `host`. */
  template <typename T>
  T* put(const std::vector<T>& host) {
    DevicePtr p = alloc(host.size() * sizeof(T));
    if (p != nullptr && !host.empty()) {
      Result r = device_.upload(p, host.data(), host.size() * sizeof(T));
      if (!r.ok()) error_ = "upload: " + r.message;
    }
    return static_cast<T*>(p);
  }
  /** host = the first host.size() elements at `device`. */
  template <typename T>
  void get(std::vector<T>* host, const T* device) {
    if (!ok() || host->empty()) return;
    Result r = device_.download(host->data(), device, host->size() * sizeof(T));
    if (!r.ok()) error_ = "download: " + r.message;
  }
  template <typename Args>
  void launch(const char* name, Dim3 grid, unsigned threads, const Args& args) {
    if (!ok()) return;
    KernelHandle kernel = nullptr;
    Result r = device_.kernel(name, &kernel);
    if (r.ok()) r = device_.launch(kernel, grid, Dim3{threads, 1, 1}, &args, sizeof args);
    if (r.ok()) r = device_.synchronize();
    if (!r.ok()) error_ = std::string(name) + ": " + r.message;
  }
  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

 private:
  Device& device_;
  std::vector<DevicePtr> owned_;
  std::string error_;
};

// ------------------------------------------------------------------------------------------------ random inputs
struct Random {
  std::mt19937_64 engine;
  explicit Random(uint64_t seed) : engine(seed) {}
  int uniform(int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(engine); }
  float normal() { return std::normal_distribution<float>(0.0f, 1.0f)(engine); }
  float unit() { return std::uniform_real_distribution<float>(0.0f, 1.0f)(engine); }
};

/** xorshift64*: cheap enough for the 2B model's billions of weights, one per thread. */
struct Fast {
  uint64_t s;
  explicit Fast(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {}
  uint64_t next() {
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 0x2545f4914f6cdd1dull;
  }
  float unit() { return static_cast<float>(next() >> 40) / 16777216.0f; }
};

float bits_f32(uint32_t bits) {
  float v;
  std::memcpy(&v, &bits, 4);
  return v;
}
uint32_t f32_bits(float v) {
  uint32_t bits;
  std::memcpy(&bits, &v, 4);
  return bits;
}
uint64_t f64_bits(double v) {
  uint64_t bits;
  std::memcpy(&bits, &v, 8);
  return bits;
}
/** Distance in representable values of T (float or double; 0 = same bits; NaN against a number: huge). */
template <typename T>
uint64_t ulp_distance(T a, T b) {
  static_assert(std::is_same<T, float>::value || std::is_same<T, double>::value, "float or double");
  if (std::isnan(a) || std::isnan(b)) return std::isnan(a) && std::isnan(b) ? 0 : UINT64_MAX;
  // Sign-magnitude bits to a line of integers where neighbours differ by one (−0 and +0 both 0).
  auto ordered = [](T v) -> int64_t {
    if constexpr (sizeof(T) == 4) {
      const int64_t i = static_cast<int32_t>(f32_bits(v));
      return i < 0 ? -(i & 0x7fffffff) : i;
    } else {
      const uint64_t bits = f64_bits(v);
      const int64_t magnitude = static_cast<int64_t>(bits & 0x7fffffffffffffffull);
      return (bits >> 63) != 0 ? -magnitude : magnitude;
    }
  };
  const int64_t a_i = ordered(a), b_i = ordered(b);
  return a_i >= b_i ? static_cast<uint64_t>(a_i) - static_cast<uint64_t>(b_i) : static_cast<uint64_t>(b_i) - static_cast<uint64_t>(a_i);
}

/** Bit-exact comparison; `detail` gets the first difference and, for floats, the largest ulp distance. */
template <typename T>
bool same(const std::vector<T>& got, const std::vector<T>& want, std::string* detail) {
  constexpr bool floating = std::is_floating_point<T>::value;
  std::size_t differing = 0, first = got.size();
  uint64_t worst = 0;
  for (std::size_t i = 0; i < got.size() && i < want.size(); i++) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) == 0) continue;
    if (differing++ == 0) first = i;
    if constexpr (floating) worst = std::max(worst, ulp_distance(got[i], want[i]));
  }
  if (got.size() != want.size()) {
    *detail = "sizes differ";
    return false;
  }
  if (differing == 0) {
    *detail = "bit-exact";
    return true;
  }
  *detail = fmt(floating ? "%zu of %zu differ, first at %zu: %.17g vs twin %.17g" : "%zu of %zu differ, first at %zu: %.0f vs twin %.0f", differing, got.size(),
                first, static_cast<double>(got[first]), static_cast<double>(want[first]));
  if constexpr (floating) *detail += fmt(", max %" PRIu64 " ulp", worst);
  return false;
}

std::string shape(const char* name, std::initializer_list<std::pair<const char*, long long>> fields) {
  std::string s = name;
  for (const auto& f : fields) s += fmt(" %s=%lld", f.first, f.second);
  return s;
}

std::vector<uint16_t> to_f16(const std::vector<float>& v) {
  std::vector<uint16_t> out(v.size());
  for (std::size_t i = 0; i < v.size(); i++) out[i] = halo_twin_f32_to_f16(v[i]);
  return out;
}

// ================================================================================================ 1. conformance
struct Conformance {
  Device& device;
  Report& report;
  Random rnd;
  bool tiny;

  void exact_check(const std::string& what, bool ok, const std::string& detail) {
    report.check("conformance", ok, what, detail, Json().str("tolerance", "bit-exact"));
  }
  template <typename T>
  void exact(const std::string& what, const std::vector<T>& got, const std::vector<T>& want) {
    std::string detail;
    const bool ok = same(got, want, &detail);
    exact_check(what, ok, detail);
  }
  bool ran(const Arena& a, const std::string& what) {
    if (a.ok()) return true;
    report.check("conformance", false, what, "device error: " + a.error());
    return false;
  }

  void embed() {
    const std::vector<int> hiddens = tiny ? std::vector<int>{80, 257} : std::vector<int>{80, 257, 2560};
    for (int dtype : {HALO_GPU_F32, HALO_GPU_F16, HALO_GPU_BF16})
      for (int hidden : hiddens) {
        const int vocab = tiny ? 37 : 5003, n = rnd.uniform(4, 9);
        std::vector<float> values(static_cast<std::size_t>(vocab) * hidden);
        for (auto& v : values) v = rnd.normal();
        std::vector<uint16_t> half(values.size());
        for (std::size_t i = 0; i < values.size(); i++) half[i] = dtype == HALO_GPU_F16 ? halo_twin_f32_to_f16(values[i]) : f32_bits(values[i]) >> 16;
        std::vector<int32_t> tokens(n);
        for (auto& t : tokens) t = rnd.uniform(0, vocab - 1);
        tokens[1] = -1, tokens[3] = vocab;  // out of range: zero rows
        std::vector<float> got(static_cast<std::size_t>(n) * hidden, 7.0f), want = got;
        const std::string what = shape("halo_embed", {{"dtype", dtype}, {"hidden", hidden}, {"vocab", vocab}, {"n", n}});
        Arena a(device);
        const void* table = dtype == HALO_GPU_F32 ? static_cast<const void*>(a.put(values)) : a.put(half);
        halo_embed_args args{table, a.put(tokens), a.put(got), n, hidden, vocab, dtype};
        a.launch("halo_embed", Dim3{static_cast<unsigned>(n), 1, 1}, HALO_ROW_THREADS, args);
        a.get(&got, args.x);
        if (!ran(a, what)) continue;
        args.table = dtype == HALO_GPU_F32 ? static_cast<const void*>(values.data()) : half.data();
        args.tokens = tokens.data();
        args.x = want.data();
        halo_embed_twin(args);
        exact(what, got, want);
      }
  }

  void norm_quant() {
    struct Case {
      int width, n, mode, variant;  // variant 0: codes; 1: codes + normed_out + row_index; 2: normed_out only
    };
    const std::vector<Case> cases =
        tiny ? std::vector<Case>{{80, 3, HALO_NORM_PLAIN, 0}, {300, 5, HALO_NORM_PLAIN, 1}, {1000, 2, HALO_NORM_RELU2, 0}, {48, 8, HALO_NORM_SILU, 1}}
             : std::vector<Case>{{2560, 1, HALO_NORM_PLAIN, 0}, {2560, 3, HALO_NORM_PLAIN, 2}, {300, 9, HALO_NORM_PLAIN, 1}, {1, 1, HALO_NORM_PLAIN, 0},
                                 {6912, 1, HALO_NORM_RELU2, 0}, {1000, 3, HALO_NORM_RELU2, 1}, {6912, 2, HALO_NORM_SILU, 0}, {1000, 3, HALO_NORM_SILU, 1},
                                 {48, 8, HALO_NORM_SILU, 2},    {2560, 17, HALO_NORM_PLAIN, 0}};
    for (const Case& c : cases) {
      const int width = c.width, n = c.n, padded = round64(width) + (c.variant == 1 ? 64 : 0), chunks = padded / 64;
      const int in_cols = c.mode == HALO_NORM_PLAIN ? width : 2 * width, in_stride = in_cols + rnd.uniform(0, 5), rows_in = n + 2;
      std::vector<float> in(static_cast<std::size_t>(rows_in) * in_stride), weight(width);
      for (auto& v : in) v = rnd.normal() * (c.mode == HALO_NORM_PLAIN ? 3.0f : 1.5f);
      for (auto& w : weight) w = 0.5f + std::fabs(rnd.normal());
      if (width > 10) in[5] = 40.0f;
      // Distinct rows: the gated modes may write the activation back over the gate half of their row.
      std::vector<int32_t> row_index(rows_in);
      for (int r = 0; r < rows_in; r++) row_index[r] = r;
      std::shuffle(row_index.begin(), row_index.end(), rnd.engine);
      row_index.resize(n);
      std::vector<float> in_got = in, in_t = in;
      const bool codes_on = c.variant != 2, normed_on = c.variant != 0;
      std::vector<int8_t> codes(codes_on ? static_cast<std::size_t>(n) * padded : 1, 99), codes_t = codes;
      std::vector<float> scales(codes_on ? n : 1, -1.0f), scales_t = scales;
      std::vector<float> normed(normed_on ? static_cast<std::size_t>(n) * width : 1, -1.0f), normed_t = normed;
      std::vector<int32_t> sums(codes_on ? static_cast<std::size_t>(n) * chunks : 1, 12345), sums_t = sums;
      const std::string what = shape("halo_norm_quant", {{"width", width}, {"n", n}, {"mode", c.mode}, {"variant", c.variant}});
      Arena a(device);
      halo_norm_quant_args args{a.put(in),
                                in_stride,
                                c.variant == 1 ? a.put(row_index) : nullptr,
                                a.put(weight),
                                n,
                                width,
                                padded,
                                c.mode,
                                1e-5,
                                codes_on ? a.put(codes) : nullptr,
                                codes_on ? a.put(scales) : nullptr,
                                codes_on ? a.put(sums) : nullptr,
                                normed_on ? a.put(normed) : nullptr};
      a.launch("halo_norm_quant", Dim3{static_cast<unsigned>(n), 1, 1}, HALO_ROW_THREADS, args);
      if (codes_on) {
        a.get(&codes, args.codes);
        a.get(&scales, args.scales);
        a.get(&sums, args.chunk_sums);
      }
      if (normed_on) a.get(&normed, args.normed_out);
      a.get(&in_got, args.in);
      if (!ran(a, what)) continue;
      args.in = in_t.data();
      args.row_index = c.variant == 1 ? row_index.data() : nullptr;
      args.weight = weight.data();
      args.codes = codes_on ? codes_t.data() : nullptr;
      args.scales = codes_on ? scales_t.data() : nullptr;
      args.chunk_sums = codes_on ? sums_t.data() : nullptr;
      args.normed_out = normed_on ? normed_t.data() : nullptr;
      halo_norm_quant_twin(args);
      std::string d1, d2, d3, d4, d5;
      const bool exact_ok =
          same(codes, codes_t, &d1) & same(scales, scales_t, &d2) & same(sums, sums_t, &d3) & same(normed, normed_t, &d4) & same(in_got, in_t, &d5);
      // Every mode is bit-exact now, SiLU included: its exp is halo_exp_f64's plain float64 arithmetic on every target.
      exact_check(what, exact_ok,
                  exact_ok ? "bit-exact" : "codes: " + d1 + "; scales: " + d2 + "; chunk_sums: " + d3 + "; normed_out: " + d4 + "; input rows: " + d5);
    }
  }

  void matmul() {
    struct Case {
      int rows, cols, n;
    };
    const std::vector<Case> cases = tiny ? std::vector<Case>{{8, 64, 1}, {13, 80, 3}, {37, 640, 9}, {20, 1000, 2}}
                                         : std::vector<Case>{{8, 64, 1},   {13, 80, 3},     {37, 2560, 9},   {20, 6912, 3},   {9, 1000, 17},
                                                             {5, 4096, 2}, {3840, 2560, 1}, {2560, 2560, 1}, {2560, 6912, 1}, {64, 2560, 512}};
    for (const Case& c : cases)
      for (int scales_kind = 0; scales_kind < 3; scales_kind++) {
        const int rows = c.rows, cols = c.cols, n = c.n, chunks = ceil_div(cols, 64);
        int block_chunks = 0;
        if (scales_kind == 1) block_chunks = 1;
        if (scales_kind == 2) {
          block_chunks = chunks;  // one block of every chunk, or the smallest divisor above 1
          for (int b = 2; b < chunks; b++)
            if (chunks % b == 0) {
              block_chunks = b;
              break;
            }
          if (block_chunks == 1) continue;  // one chunk: the same as scales_kind 1
        }
        const int blocks = block_chunks > 0 ? chunks / block_chunks : 1;
        std::vector<int8_t> trits(static_cast<std::size_t>(rows) * cols);
        for (auto& t : trits) t = static_cast<int8_t>(rnd.uniform(-1, 1));
        const bool extreme = rows == 5;  // every activation −128 against trit +1 in row 0: the int32 range at its widest
        if (extreme)
          for (int k = 0; k < cols; k++) trits[k] = 1;
        std::vector<uint32_t> weights(static_cast<std::size_t>(rows) * chunks * 4);
        std::string why;
        if (!halo_gpu::g2_pack(trits.data(), rows, cols, reinterpret_cast<uint8_t*>(weights.data()), &why)) {
          report.check("conformance", false, "g2_pack", why);
          continue;
        }
        std::vector<float> wscales(static_cast<std::size_t>(rows) * blocks);
        for (auto& s : wscales) s = 0.01f + 2.0f * std::fabs(rnd.normal());
        std::vector<int8_t> codes(static_cast<std::size_t>(n) * chunks * 64, 0);
        for (int t = 0; t < n; t++)
          for (int k = 0; k < cols; k++) codes[static_cast<std::size_t>(t) * chunks * 64 + k] = static_cast<int8_t>(extreme ? -128 : rnd.uniform(-128, 127));
        std::vector<int32_t> sums(static_cast<std::size_t>(n) * chunks, 0);
        for (int t = 0; t < n; t++)
          for (int k = 0; k < chunks * 64; k++) sums[static_cast<std::size_t>(t) * chunks + k / 64] += codes[static_cast<std::size_t>(t) * chunks * 64 + k];
        std::vector<float> ascales(n);
        for (auto& s : ascales) s = 1.0f + 50.0f * std::fabs(rnd.normal());
        for (int accumulate = 0; accumulate < 2; accumulate++) {
          const int y_stride = rows + rnd.uniform(0, 3);
          std::vector<float> y(static_cast<std::size_t>(n) * y_stride);
          for (auto& v : y) v = rnd.normal();
          std::vector<float> want = y;
          const std::string what = shape("halo_matmul", {{"rows", rows}, {"cols", cols}, {"n", n}, {"block_chunks", block_chunks}, {"accumulate", accumulate}});
          Arena a(device);
          halo_matmul_args args{a.put(weights), a.put(wscales), rows, chunks,   block_chunks, a.put(codes),
                                a.put(ascales), a.put(sums),    n,    a.put(y), y_stride,     accumulate};
          a.launch("halo_matmul", Dim3{static_cast<unsigned>(ceil_div(rows, HALO_MATMUL_ROWS)), static_cast<unsigned>(ceil_div(n, HALO_MATMUL_TOKENS)), 1},
                   HALO_MATMUL_THREADS, args);
          a.get(&y, args.y);
          if (!ran(a, what)) continue;
          args.weights = weights.data();
          args.wscales = wscales.data();
          args.codes = codes.data();
          args.ascales = ascales.data();
          args.chunk_sums = sums.data();
          args.y = want.data();
          halo_matmul_twin(args);
          exact(what, y, want);
        }
      }
  }

  /** The RoPE table's element type as halo_kernel_args.h declares it (the host computes it in float64). */
  using RopeValue = std::remove_const_t<std::remove_pointer_t<decltype(halo_rope_kv_args::rope)>>;

  static std::vector<RopeValue> rope_table(int context, int head_dim, double theta) {
    const int half = head_dim / 2;
    std::vector<RopeValue> table(static_cast<std::size_t>(context) * half * 2);
    for (int p = 0; p < context; p++)
      for (int i = 0; i < half; i++) {
        const double angle = p * std::pow(theta, -2.0 * i / head_dim);
        table[(static_cast<std::size_t>(p) * half + i) * 2] = static_cast<RopeValue>(std::cos(angle));
        table[(static_cast<std::size_t>(p) * half + i) * 2 + 1] = static_cast<RopeValue>(std::sin(angle));
      }
    return table;
  }

  void rope_kv() {
    struct Case {
      int heads, kv_heads, head_dim, n;
    };
    const std::vector<Case> cases = tiny ? std::vector<Case>{{4, 2, 16, 1}, {6, 2, 64, 9}, {3, 3, 2, 1}}
                                         : std::vector<Case>{{4, 2, 16, 1}, {4, 4, 64, 3}, {6, 2, 128, 9}, {20, 5, 128, 2}, {20, 5, 128, 64}, {3, 3, 2, 1}};
    for (const Case& c : cases)
      for (int kv_dtype : {HALO_GPU_F32, HALO_GPU_F16}) {
        const int context = c.n > 30 ? 1100 : 150, layers = 3, layer = 1, slots_count = 3;
        const int q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim, stride = q_dim + 2 * kv_dim + rnd.uniform(0, 3);
        const std::vector<RopeValue> rope = rope_table(context, c.head_dim, 500000.0);
        std::vector<float> qkv(static_cast<std::size_t>(c.n) * stride);
        for (auto& v : qkv) v = rnd.normal();
        // Distinct (slot, position) per row: two rows writing one cache entry would race.
        std::vector<int32_t> positions(c.n), slots(c.n);
        for (int t = 0; t < c.n; t++) {
          for (bool taken = true; taken;) {
            positions[t] = t == 0 ? context - 1 : rnd.uniform(0, context - 1);
            slots[t] = rnd.uniform(0, slots_count - 1);
            taken = false;
            for (int u = 0; u < t; u++) taken = taken || (positions[u] == positions[t] && slots[u] == slots[t]);
          }
        }
        if (c.n > 2) positions[2] = context;  // out of range: the row is left alone
        const std::size_t cache_bytes = static_cast<std::size_t>(slots_count) * layers * context * kv_dim * (kv_dtype == HALO_GPU_F16 ? 2 : 4);
        std::vector<uint8_t> keys(cache_bytes, 0xab), values(cache_bytes, 0xcd), keys_t = keys, values_t = values;
        std::vector<float> qkv_t = qkv;
        const std::string what =
            shape("halo_rope_kv", {{"heads", c.heads}, {"kv_heads", c.kv_heads}, {"head_dim", c.head_dim}, {"n", c.n}, {"kv_dtype", kv_dtype}});
        Arena a(device);
        halo_rope_kv_args args{a.put(qkv), stride,      a.put(positions), a.put(slots), a.put(rope), c.n,     c.heads, c.kv_heads,
                               c.head_dim, a.put(keys), a.put(values),    layer,        layers,      context, kv_dtype};
        a.launch("halo_rope_kv", Dim3{static_cast<unsigned>(c.n), 1, 1}, HALO_ROW_THREADS, args);
        a.get(&qkv, args.qkv);
        a.get(&keys, static_cast<const uint8_t*>(args.keys));
        a.get(&values, static_cast<const uint8_t*>(args.values));
        if (!ran(a, what)) continue;
        args.qkv = qkv_t.data();
        args.positions = positions.data();
        args.slots = slots.data();
        args.rope = rope.data();
        args.keys = keys_t.data();
        args.values = values_t.data();
        halo_rope_kv_twin(args);
        std::string d1, d2, d3;
        const bool ok = same(qkv, qkv_t, &d1) & same(keys, keys_t, &d2) & same(values, values_t, &d3);
        exact_check(what, ok, ok ? "bit-exact" : "qkv: " + d1 + "; keys: " + d2 + "; values: " + d3);
      }
  }

  void attention() {
    struct Case {
      int heads, kv_heads, head_dim, tile, context;
      std::vector<int> positions;
    };
    const std::vector<Case> cases = tiny ? std::vector<Case>{{4, 2, 16, 64, 200, {0}}, {6, 3, 64, 16, 200, {47, 48, 9}}, {4, 2, 32, 64, 200, {63, 64, 65, 130}}}
                                         : std::vector<Case>{{4, 2, 16, 64, 200, {0}},
                                                             {4, 4, 64, 64, 200, {63, 64, 65}},
                                                             {8, 2, 128, 64, 200, {130, 0, 199, 64, 127, 5, 66, 190, 31}},
                                                             {6, 3, 64, 16, 200, {47, 48, 9}},
                                                             {2, 1, 256, 64, 200, {100}},
                                                             {5, 5, 48, 32, 200, {1, 2, 33}},
                                                             {20, 5, 128, 64, 1100, {1023, 700, 64, 63}},
                                                             {20, 5, 128, 64, 1100, {991}}};
    for (const Case& c : cases)
      for (int kv_dtype : {HALO_GPU_F32, HALO_GPU_F16}) {
        const int n = static_cast<int>(c.positions.size()), context = c.context, layers = 2, layer = 1, slots_count = 3;
        const int q_dim = c.heads * c.head_dim, kv_dim = c.kv_heads * c.head_dim, q_stride = q_dim + 2 * kv_dim + 1;
        int longest = 0;
        for (int p : c.positions) longest = std::max(longest, p + 1);
        const int splits = ceil_div(longest, c.tile) + 1;  // one split past every row: it must come out empty
        const std::size_t cache_elems = static_cast<std::size_t>(slots_count) * layers * context * kv_dim;
        std::vector<float> kf(cache_elems), vf(cache_elems);
        for (auto& v : kf) v = rnd.normal();
        for (auto& v : vf) v = rnd.normal();
        const std::vector<uint16_t> kh = to_f16(kf), vh = to_f16(vf);
        double vmax = 0;
        for (std::size_t i = 0; i < cache_elems; i++) vmax = std::max(vmax, std::fabs(static_cast<double>(vf[i])));
        std::vector<float> q(static_cast<std::size_t>(n) * q_stride);
        for (auto& v : q) v = 2.0f * rnd.normal();
        std::vector<int32_t> positions(c.positions.begin(), c.positions.end()), slots(n);
        for (auto& s : slots) s = rnd.uniform(0, slots_count - 1);
        const std::size_t stride = c.head_dim + 2;
        std::vector<double> partial(static_cast<std::size_t>(n) * c.heads * splits * stride, 9.0), partial_t = partial;
        const double scale = 1.0 / std::sqrt(static_cast<double>(c.head_dim));  // as gpu_model passes it
        const int out_stride = q_dim + 3;
        std::vector<float> out(static_cast<std::size_t>(n) * out_stride, 5.0f), out_t = out;
        const std::string what = shape(
            "halo_attention+merge",
            {{"heads", c.heads}, {"kv_heads", c.kv_heads}, {"head_dim", c.head_dim}, {"tile", c.tile}, {"n", n}, {"longest", longest}, {"kv_dtype", kv_dtype}});
        Arena a(device);
        const void* keys = kv_dtype == HALO_GPU_F16 ? static_cast<const void*>(a.put(kh)) : a.put(kf);
        const void* values = kv_dtype == HALO_GPU_F16 ? static_cast<const void*>(a.put(vh)) : a.put(vf);
        halo_attention_args args{a.put(q),   q_stride,   keys,  values, kv_dtype, a.put(positions), a.put(slots), n,     c.heads,
                                 c.kv_heads, c.head_dim, layer, layers, context,  c.tile,           splits,       scale, a.put(partial)};
        a.launch("halo_attention", Dim3{static_cast<unsigned>(n * c.heads), static_cast<unsigned>(splits), 1}, HALO_ATTN_THREADS, args);
        halo_attention_merge_args merge{args.partial, n, c.heads, c.head_dim, splits, a.put(out), out_stride};
        a.launch("halo_attention_merge", Dim3{static_cast<unsigned>(n * c.heads), 1, 1}, HALO_ATTN_THREADS, merge);
        a.get(&partial, args.partial);
        a.get(&out, merge.out);
        if (!ran(a, what)) continue;
        args.q = q.data();
        args.keys = kv_dtype == HALO_GPU_F16 ? static_cast<const void*>(kh.data()) : kf.data();
        args.values = kv_dtype == HALO_GPU_F16 ? static_cast<const void*>(vh.data()) : vf.data();
        args.positions = positions.data();
        args.slots = slots.data();
        args.partial = partial_t.data();
        halo_attention_twin(args);
        merge.partial = partial_t.data();
        merge.out = out_t.data();
        halo_attention_merge_twin(merge);
        std::string d1, d2;
        const bool exact_ok = same(partial, partial_t, &d1) & same(out, out_t, &d2);
        if (exact_ok) {
          exact_check(what, true, "bit-exact (partials and merged)");
          continue;
        }
        // Bit-exact is the check (no hardware exp is left); this only measures how far off the device is: m (the max
        // score) and empty splits (m = −inf, l = 0, o left unwritten) by their 64-bit patterns, l relative, o relative to l·max|v|,
        // the merged output relative to max|v|, and the padding past heads·head_dim untouched.
        long m_wrong = 0, empty_wrong = 0;
        double l_err = 0, o_err = 0, out_err = 0;
        for (std::size_t b = 0; b < static_cast<std::size_t>(n) * c.heads * splits; b++) {
          const double* g = partial.data() + b * stride;
          const double* w = partial_t.data() + b * stride;
          m_wrong += f64_bits(g[0]) != f64_bits(w[0]);
          if (w[1] == 0.0) {
            for (std::size_t i = 1; i < stride; i++) empty_wrong += f64_bits(g[i]) != f64_bits(w[i]);
            continue;
          }
          l_err = std::max(l_err, std::fabs(g[1] - w[1]) / w[1]);
          for (int d = 0; d < c.head_dim; d++) o_err = std::max(o_err, std::fabs(g[2 + d] - w[2 + d]) / (w[1] * vmax));
        }
        long pad_wrong = 0;
        for (int t = 0; t < n; t++) {
          for (int i = 0; i < q_dim; i++) {
            const std::size_t at = static_cast<std::size_t>(t) * out_stride + i;
            out_err = std::max(out_err, std::fabs(static_cast<double>(out[at]) - out_t[at]) / vmax);
          }
          for (int i = q_dim; i < out_stride; i++) pad_wrong += out[static_cast<std::size_t>(t) * out_stride + i] != 5.0f;
        }
        report.check("conformance", false, what,
                     fmt("not bit-exact: partials %s; merged %s; m differs %ld, empty splits differ %ld, padding touched %ld; l rel %.2g, o rel %.2g, "
                         "merged rel %.2g",
                         d1.c_str(), d2.c_str(), m_wrong, empty_wrong, pad_wrong, l_err, o_err, out_err),
                     Json().str("tolerance", "bit-exact").num("l_rel", l_err).num("o_rel", o_err).num("merged_rel", out_err));
      }
  }

  void lm_head() {
    struct Case {
      int vocab, hidden, n;
    };
    const std::vector<Case> cases = tiny ? std::vector<Case>{{37, 48, 1}, {300, 100, 9}, {19, 66, 17}}
                                         : std::vector<Case>{{37, 48, 1}, {300, 100, 9}, {19, 66, 17}, {4133, 2560, 2}, {128256, 2560, 1}};
    for (const Case& c : cases)
      for (int dtype : {HALO_GPU_F32, HALO_GPU_F16, HALO_GPU_BF16}) {
        std::vector<float> table(static_cast<std::size_t>(c.vocab) * c.hidden);
        for (auto& v : table) v = rnd.normal() * 0.05f;
        std::vector<uint16_t> half(dtype == HALO_GPU_F32 ? 0 : table.size());
        for (std::size_t i = 0; i < half.size(); i++) half[i] = dtype == HALO_GPU_F16 ? halo_twin_f32_to_f16(table[i]) : f32_bits(table[i]) >> 16;
        std::vector<float> x(static_cast<std::size_t>(c.n) * c.hidden);
        for (auto& v : x) v = rnd.normal();
        std::vector<float> logits(static_cast<std::size_t>(c.n) * c.vocab, 3.0f), want = logits;
        const std::string what = shape("halo_lm_head", {{"vocab", c.vocab}, {"hidden", c.hidden}, {"n", c.n}, {"dtype", dtype}});
        Arena a(device);
        const void* head = dtype == HALO_GPU_F32 ? static_cast<const void*>(a.put(table)) : a.put(half);
        halo_lm_head_args args{head, dtype, a.put(x), c.n, c.hidden, c.vocab, a.put(logits)};
        a.launch("halo_lm_head", Dim3{static_cast<unsigned>(ceil_div(c.vocab, HALO_HEAD_ROWS)), static_cast<unsigned>(ceil_div(c.n, HALO_HEAD_TOKENS)), 1},
                 HALO_HEAD_THREADS, args);
        a.get(&logits, args.logits);
        if (!ran(a, what)) continue;
        args.head = dtype == HALO_GPU_F32 ? static_cast<const void*>(table.data()) : half.data();
        args.x = x.data();
        args.logits = want.data();
        halo_lm_head_twin(args);
        exact(what, logits, want);
      }
  }

  void topk() {
    const float inf = INFINITY, nan = std::nanf(""), flt_max = bits_f32(0x7f7fffffu);
    struct Case {
      int vocab, n, k, argmax, style;  // style 0: normal; 1: few distinct levels (ties); 2: NaN / ±inf / FLT_MAX / ±0 mixed in; 3: nothing rankable
    };
    const std::vector<Case> cases = tiny ? std::vector<Case>{{5, 3, 1, 1, 2}, {100, 2, 1, 1, 1}, {4097, 2, 40, 0, 2}, {4500, 1, 1, 1, 3}, {300, 2, 40, 0, 1}}
                                         : std::vector<Case>{{1, 1, 1, 1, 0},      {5, 3, 1, 1, 2},       {100, 2, 1, 1, 1},     {4097, 3, 1, 1, 0},
                                                             {9000, 2, 1, 1, 3},   {9000, 2, 40, 0, 1},   {4097, 1, 64, 0, 2},   {20000, 1, 40, 0, 2},
                                                             {128256, 1, 1, 1, 2}, {128256, 2, 40, 0, 0}, {128256, 1, 40, 0, 1}, {128256, 4, 1, 1, 0}};
    for (const Case& c : cases) {
      std::vector<float> logits(static_cast<std::size_t>(c.n) * c.vocab);
      for (auto& v : logits) {
        if (c.style == 1) v = static_cast<float>(rnd.uniform(-3, 3)) * 0.5f;
        else if (c.style == 3) v = rnd.uniform(0, 1) != 0 ? nan : -inf;
        else v = rnd.normal() * 4.0f;
        if (c.style == 2) {
          const int r = rnd.uniform(0, 19);
          if (r == 0) v = nan;
          if (r == 1) v = -inf;
          if (r == 2) v = inf;
          if (r == 3) v = flt_max;
          if (r == 4) v = -0.0f;
          if (r == 5) v = 0.0f;
        }
      }
      if (c.style == 2 && c.vocab > 3) logits[c.vocab - 1] = inf, logits[1] = flt_max;  // FLT_MAX at a lower id beats +inf
      const int k = c.argmax != 0 ? 1 : c.k, blocks = ceil_div(c.vocab, HALO_TOPK_SPAN);
      std::vector<int32_t> cand_ids(static_cast<std::size_t>(c.n) * blocks * k, 77), cand_ids_t = cand_ids;
      std::vector<float> cand_values(cand_ids.size(), 7.0f), cand_values_t = cand_values;
      std::vector<int32_t> ids(static_cast<std::size_t>(c.n) * k, 55), ids_t = ids, ids_def = ids;
      std::vector<float> values(ids.size(), 5.0f), values_t = values, values_def = values;
      const std::string what = shape("halo_topk+merge", {{"vocab", c.vocab}, {"n", c.n}, {"k", k}, {"argmax", c.argmax}, {"style", c.style}});
      Arena a(device);
      halo_topk_args args{a.put(logits), c.n, c.vocab, k, blocks, c.argmax, a.put(cand_ids), a.put(cand_values)};
      a.launch("halo_topk", Dim3{static_cast<unsigned>(c.n), static_cast<unsigned>(blocks), 1}, HALO_TOPK_THREADS, args);
      halo_topk_merge_args merge{args.cand_ids, args.cand_values, c.n, k, blocks, c.argmax, a.put(ids), a.put(values)};
      a.launch("halo_topk_merge", Dim3{static_cast<unsigned>(c.n), 1, 1}, HALO_TOPK_THREADS, merge);
      a.get(&cand_ids, args.cand_ids);
      a.get(&cand_values, args.cand_values);
      a.get(&ids, merge.ids);
      a.get(&values, merge.values);
      if (!ran(a, what)) continue;
      args.logits = logits.data();
      args.cand_ids = cand_ids_t.data();
      args.cand_values = cand_values_t.data();
      halo_topk_twin(args);
      merge.cand_ids = cand_ids_t.data();
      merge.cand_values = cand_values_t.data();
      merge.ids = ids_t.data();
      merge.values = values_t.data();
      halo_topk_merge_twin(merge);
      halo_topk_rows_definition(logits.data(), c.n, c.vocab, k, c.argmax, ids_def.data(), values_def.data());
      // The ranking is a total order (ties broken by id, NaN last), so ids are compared exactly even with ties.
      std::string d1, d2, d3, d4, d5;
      const bool ok = same(cand_ids, cand_ids_t, &d1) & same(cand_values, cand_values_t, &d2) & same(ids, ids_t, &d3) & same(values, values_t, &d4) &
                      same(ids, ids_def, &d5);
      exact_check(what, ok,
                  ok ? "bit-exact (ids and values; ids equal the contract's " + std::string(c.argmax != 0 ? "argmaxRows" : "topKRows") + ")"
                     : "candidates: " + d1 + " / " + d2 + "; merged: " + d3 + " / " + d4 + "; vs definition: " + d5);
    }
  }

  void run() {
    embed();
    norm_quant();
    matmul();
    rope_kv();
    attention();
    lm_head();
    topk();
  }
};

// ================================================================================================ model weights
/** A model's weights on the host, random: halo-g2 rows with per-row scales, norms, f16 embedding and f16 head. */
struct HostWeights {
  ModelConfig config;
  std::vector<std::array<std::vector<uint8_t>, 4>> g2;      // [layer][role] [rows][chunks · 16]
  std::vector<std::array<std::vector<float>, 4>> scales;    // [layer][role] [rows]
  std::vector<std::array<std::vector<float>, 4>> norms;     // [layer][which]
  std::vector<float> output_norm;                           // [hidden]
  std::vector<uint16_t> embedding, head;                    // [vocab][hidden] f16
};

std::array<std::array<int, 2>, 4> matrix_shapes(const ModelConfig& c) {
  const int q_dim = c.heads * c.head_dim, kv = c.kv_heads * c.head_dim;
  return {{{q_dim + 2 * kv, c.hidden}, {c.hidden, q_dim}, {2 * c.intermediate, c.hidden}, {c.hidden, c.intermediate}}};
}

/** Runs `work(i)` for i in [0, count) on up to `threads` threads. */
void parallel_for(int count, unsigned threads, const std::function<void(int)>& work) {
  threads = std::max(1u, std::min<unsigned>(threads, static_cast<unsigned>(count)));
  std::vector<std::thread> pool;
  std::atomic<int> next{0};
  for (unsigned t = 0; t < threads; t++)
    pool.emplace_back([&] {
      for (int i = next++; i < count; i = next++) work(i);
    });
  for (auto& th : pool) th.join();
}

HostWeights random_weights(const ModelConfig& c, uint64_t seed, unsigned threads) {
  HostWeights w;
  w.config = c;
  w.g2.resize(c.layers);
  w.scales.resize(c.layers);
  w.norms.resize(c.layers);
  const auto shapes = matrix_shapes(c);
  const int norm_sizes[4] = {c.hidden, c.heads * c.head_dim, c.hidden, c.intermediate};
  // One task per (layer, role): trits from a per-task generator, packed with the package's own packer.
  parallel_for(c.layers * 4, threads, [&](int task) {
    const int l = task / 4, role = task % 4, rows = shapes[role][0], cols = shapes[role][1];
    Fast f(seed * 1000003 + static_cast<uint64_t>(task));
    std::vector<int8_t> trits(static_cast<std::size_t>(rows) * cols);
    for (auto& t : trits) t = static_cast<int8_t>(static_cast<int>(f.next() % 3) - 1);
    w.g2[l][role].resize(halo_gpu::g2_row_bytes(cols) * rows);
    std::string why;
    halo_gpu::g2_pack(trits.data(), rows, cols, w.g2[l][role].data(), &why);
    w.scales[l][role].resize(rows);
    for (auto& s : w.scales[l][role]) s = (0.7f + 0.6f * f.unit()) / std::sqrt(0.6f * cols);
    w.norms[l][role].resize(norm_sizes[role]);
    for (auto& v : w.norms[l][role]) v = 0.6f + 0.8f * f.unit();
  });
  Fast f(seed);
  w.output_norm.resize(c.hidden);
  for (auto& v : w.output_norm) v = 0.6f + 0.8f * f.unit();
  const std::size_t table = static_cast<std::size_t>(c.vocab) * c.hidden;
  w.embedding.resize(table);
  w.head.resize(table);
  const int parts = 64;
  parallel_for(parts, threads, [&](int part) {
    Fast g(seed * 7919 + static_cast<uint64_t>(part));
    for (std::size_t i = table * part / parts; i < table * (part + 1) / parts; i++) {
      w.embedding[i] = halo_gpu::host_f32_to_f16(g.unit() * 2 - 1);
      w.head[i] = halo_gpu::host_f32_to_f16((g.unit() * 2 - 1) * 0.5f);
    }
  });
  return w;
}

/** Opens `which` and uploads every weight; the model is finalized on success. */
ModelResult load_model(const HostWeights& w, const std::string& which, const std::string& code_dir, bool graphs, int kv_dtype, std::unique_ptr<GpuModel>* out) {
  ModelConfig c = w.config;
  c.graphs = graphs;
  c.kv_dtype = kv_dtype;
  std::unique_ptr<GpuModel> m;
  ModelResult r = GpuModel::open(c, which, code_dir, &m);
  const auto shapes = matrix_shapes(c);
  for (int l = 0; l < c.layers && r.ok(); l++)
    for (int role = 0; role < 4 && r.ok(); role++) {
      r = m->set_matrix(l, role, shapes[role][0], shapes[role][1], 0, w.scales[l][role].data(), w.scales[l][role].size());
      if (r.ok()) r = m->upload_g2(l, role, 0, w.g2[l][role].data(), w.g2[l][role].size(), shapes[role][0]);
      if (r.ok()) r = m->set_norm(l, role, w.norms[l][role].data(), w.norms[l][role].size());
    }
  if (r.ok()) r = m->set_norm(-1, 0, w.output_norm.data(), w.output_norm.size());
  if (r.ok()) r = m->set_embedding(w.embedding.data(), w.embedding.size(), HALO_GPU_F16);
  if (r.ok()) r = m->set_head(false, w.head.data(), w.head.size(), HALO_GPU_F16);
  if (r.ok()) r = m->finalize();
  if (r.ok()) *out = std::move(m);
  return r;
}

/** One step of `tokens` for `slot` from position `start`: logits (or argmax ids) of the last row. */
ModelResult step_rows(GpuModel& m, const std::vector<int32_t>& tokens, int start, int slot, StepOutput output, StepResult* result) {
  const int n = static_cast<int>(tokens.size());
  std::vector<int32_t> positions(n), slots(n, slot);
  for (int i = 0; i < n; i++) positions[i] = start + i;
  const int32_t last = n - 1;
  StepRequest q;
  q.tokens = tokens.data();
  q.positions = positions.data();
  q.slots = slots.data();
  q.n = n;
  q.logit_rows = &last;
  q.n_logits = 1;
  q.output = output;
  return m.step(q, result);
}

int host_argmax(const std::vector<float>& logits) {
  int32_t id = -1;
  float value = 0;
  halo_gpu::host_top_k_rows(logits.data(), 1, static_cast<int>(logits.size()), 1, &id, &value);
  return id;
}

// ================================================================================================ 2. model
struct ModelSection {
  const Options& o;
  Report& report;

  ModelConfig tiny_config() const {
    // hidden and intermediate not multiples of 64 (padded chunks), GQA 3:1, a prompt + 32 steps crossing the 64-position
    // attention tile; on a GPU, a vocabulary over two top-k spans and a third layer (--tiny keeps the emulator quick).
    ModelConfig c;
    c.hidden = 160;
    c.intermediate = 352;
    c.layers = o.tiny ? 2 : 3;
    c.heads = 6;
    c.kv_heads = 2;
    c.head_dim = 32;
    c.vocab = o.tiny ? 300 : 4500;
    c.context = 160;
    c.max_sequences = 2;
    c.max_batch_tokens = 48;
    c.rope_theta = 10000;
    c.eps = 1e-5;
    c.relu2 = true;
    return c;
  }

  struct Run {
    std::vector<std::vector<float>> logits;  // [steps + 1][vocab]
    std::vector<int32_t> picks;              // the host argmax of each step's logits
    std::string error;
  };

  /** Prompt then `steps` decode steps on slot 0, each fed `feed[s]` (teacher forcing) or, when `feed` is empty, its own
   *  pick (greedy). */
  Run run(GpuModel& m, const std::vector<int32_t>& prompt, int steps, const std::vector<int32_t>& feed) {
    Run out;
    StepResult r;
    ModelResult s = step_rows(m, prompt, 0, 0, StepOutput::Logits, &r);
    for (int i = 0; s.ok(); i++) {
      out.logits.push_back(r.logits);
      out.picks.push_back(host_argmax(r.logits));
      if (i == steps) break;
      const int32_t token = feed.empty() ? out.picks.back() : feed[i];
      s = step_rows(m, {token}, static_cast<int>(prompt.size()) + i, 0, StepOutput::Logits, &r);
    }
    if (!s.ok()) out.error = s.message;
    return out;
  }

  void execute() {
    const ModelConfig c = tiny_config();
    const int steps = 32, prompt_length = 40;
    const HostWeights w = random_weights(c, o.seed + 17, std::thread::hardware_concurrency());
    std::vector<int32_t> prompt(prompt_length);
    Fast f(o.seed + 3);
    for (auto& t : prompt) t = static_cast<int32_t>(f.next() % static_cast<uint64_t>(c.vocab));
    for (int kv_dtype : {HALO_GPU_F16, HALO_GPU_F32}) {
      const char* kv_name = kv_dtype == HALO_GPU_F16 ? "f16" : "f32";
      // The emulator's greedy run is the reference (graphs do not change its results: model_test checks that).
      std::unique_ptr<GpuModel> emu;
      ModelResult r = load_model(w, "emulator", "", true, kv_dtype, &emu);
      const double t0 = now_s();
      Run ref = r.ok() ? run(*emu, prompt, steps, {}) : Run{};
      if (!r.ok() || !ref.error.empty()) {
        report.error("model", fmt("emulator reference (kv %s): %s", kv_name, r.ok() ? ref.error.c_str() : r.message.c_str()));
        continue;
      }
      std::printf("  (emulator reference, kv %s: %d steps in %.1f s)\n", kv_name, steps + 1, now_s() - t0);
      for (bool graphs : {true, false}) {
        const std::string what = fmt("tiny model, kv %s, graphs %s: prompt %d + %d greedy steps", kv_name, graphs ? "on" : "off", prompt_length, steps);
        std::unique_ptr<GpuModel> dev;
        r = load_model(w, o.device, o.code_dir, graphs, kv_dtype, &dev);
        if (!r.ok()) {
          report.error("model", what + ": " + r.message);
          continue;
        }
        // Teacher-forced with the emulator's picks, so one near-tie cannot derail the remaining steps.
        const Run got = run(*dev, prompt, steps, std::vector<int32_t>(ref.picks.begin(), ref.picks.end()));
        if (!got.error.empty()) {
          report.error("model", what + ": " + got.error);
          continue;
        }
        // Bit for bit, every step: the kernels match their twins exactly, so the device runs the emulator's arithmetic.
        // The differences are measured only to describe a failure (a rounding drift stays near float rounding; a broken
        // kernel does not).
        double worst = 0, worst_abs = 0;
        int differing_steps = 0, mismatches = 0;
        for (std::size_t s = 0; s < got.logits.size(); s++) {
          const std::vector<float>& a = got.logits[s];
          const std::vector<float>& b = ref.logits[s];
          if (a.size() != b.size() || std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) != 0) differing_steps++;
          double diff = 0, scale = 1e-30;
          for (std::size_t v = 0; v < a.size() && v < b.size(); v++) {
            diff = std::max(diff, std::fabs(static_cast<double>(a[v]) - b[v]));
            scale = std::max(scale, std::fabs(static_cast<double>(b[v])));
          }
          worst = std::max(worst, diff / scale);
          worst_abs = std::max(worst_abs, diff);
          mismatches += got.picks[s] != ref.picks[s];
        }
        const ModelInfo info = dev->info();
        const bool ok = differing_steps == 0 && mismatches == 0 && got.logits.size() == ref.logits.size();
        report.check("model", ok, what,
                     fmt("tokens: %d of %zu equal; logits %s (%d of %zu steps differ, max |Δ| %.3g, / max |logit| = %.3g); %d launches per step, %.0f "
                         "graph replays",
                         static_cast<int>(got.picks.size()) - mismatches, got.picks.size(), differing_steps == 0 ? "bit-identical" : "DIFFER", differing_steps,
                         got.logits.size(), worst_abs, worst, info.launches_per_step, info.graph_replays),
                     Json()
                         .str("kv", kv_name)
                         .boolean("graphs", graphs)
                         .num("steps", steps)
                         .num("token_mismatches", mismatches)
                         .num("differing_steps", differing_steps)
                         .num("logit_abs_diff", worst_abs)
                         .num("logit_rel_diff", worst)
                         .num("graph_replays", info.graph_replays));
        if (graphs) kv_round_trip(*dev, *emu, c, prompt_length + steps, kv_name);
      }
    }
  }

  /** Export slot 0 (device vs emulator), import it into slot 1, export again (exact), and continue both slots by one
   *  step (identical logits); then hand the emulator's KV to the device and continue: device and emulator KV and the
   *  continuation's logits all bit-identical (see "exactness"). */
  void kv_round_trip(GpuModel& dev, GpuModel& emu, const ModelConfig& c, int length, const char* kv_name) {
    const std::size_t count = static_cast<std::size_t>(c.layers) * length * c.kv_heads * c.head_dim;
    std::vector<float> keys(count), values(count), keys_emu(count), values_emu(count), keys_back(count), values_back(count);
    const std::string what = fmt("KV export / import, kv %s, %d positions", kv_name, length);
    ModelResult r = dev.export_slot(0, length, keys.data(), values.data(), count);
    if (r.ok()) r = emu.export_slot(0, length, keys_emu.data(), values_emu.data(), count);
    if (r.ok()) r = dev.import_slot(1, length, keys.data(), values.data(), count);
    if (r.ok()) r = dev.export_slot(1, length, keys_back.data(), values_back.data(), count);
    StepResult a, b, e, h;
    const int32_t token = 5;
    if (r.ok()) r = step_rows(dev, {token}, length, 0, StepOutput::Logits, &a);
    if (r.ok()) r = step_rows(dev, {token}, length, 1, StepOutput::Logits, &b);
    if (r.ok()) r = step_rows(emu, {token}, length, 0, StepOutput::Logits, &e);
    // Hand-off: the emulator's KV into the device's slot 1, one step there.
    if (r.ok()) r = dev.import_slot(1, length, keys_emu.data(), values_emu.data(), count);
    if (r.ok()) r = step_rows(dev, {token}, length, 1, StepOutput::Logits, &h);
    if (!r.ok()) {
      report.error("model", what + ": " + r.message);
      return;
    }
    double kv_diff = 0, kv_scale = 1e-30;
    for (std::size_t i = 0; i < count; i++) {
      kv_diff = std::max({kv_diff, std::fabs(static_cast<double>(keys[i]) - keys_emu[i]), std::fabs(static_cast<double>(values[i]) - values_emu[i])});
      kv_scale = std::max({kv_scale, std::fabs(static_cast<double>(keys_emu[i])), std::fabs(static_cast<double>(values_emu[i]))});
    }
    double handoff = 0, scale = 1e-30;
    for (std::size_t v = 0; v < e.logits.size(); v++) {
      handoff = std::max(handoff, std::fabs(static_cast<double>(h.logits[v]) - e.logits[v]));
      scale = std::max(scale, std::fabs(static_cast<double>(e.logits[v])));
    }
    auto bits_equal = [](const std::vector<float>& x, const std::vector<float>& y) {
      return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(float)) == 0;
    };
    const bool round_trip = bits_equal(keys_back, keys) && bits_equal(values_back, values);
    const bool continued = !a.logits.empty() && bits_equal(a.logits, b.logits);
    const bool kv_same = bits_equal(keys, keys_emu) && bits_equal(values, values_emu);
    const bool handed_off = !e.logits.empty() && bits_equal(h.logits, e.logits);
    const bool ok = round_trip && continued && kv_same && handed_off;
    report.check("model", ok, what,
                 fmt("re-export %s, continuation from the imported slot %s; device vs emulator KV %s (max rel %.3g); emulator KV handed to the device: next "
                     "logits %s (max rel %.3g)",
                     round_trip ? "exact" : "DIFFERS", continued ? "bit-identical" : "DIFFERS", kv_same ? "bit-identical" : "DIFFERS", kv_diff / kv_scale,
                     handed_off ? "bit-identical" : "DIFFER", handoff / scale),
                 Json()
                     .str("kv", kv_name)
                     .boolean("round_trip_exact", round_trip)
                     .boolean("kv_bit_identical", kv_same)
                     .boolean("handoff_bit_identical", handed_off)
                     .num("kv_rel_diff", kv_diff / kv_scale)
                     .num("handoff_rel_diff", handoff / scale));
  }
};

// ================================================================================================ 3. bandwidth
/** Runs `queue` (which queues work on the device), then synchronizes; seconds, or NaN on a device error. */
double timed(Device& d, const std::function<bool()>& queue) {
  const double t0 = now_s();
  if (!queue() || !d.synchronize().ok()) return NAN;
  return now_s() - t0;
}

struct BandwidthSection {
  const Options& o;
  Report& report;
  Device& bench;
  double nop_s = NAN;        // one no-op kernel per launch, launched back to back on the stream (launch + gap)
  double nop_graph_s = NAN;  // the same, per kernel of a replayed graph (what a GEMV in a decode step pays besides its work)

  void execute() {
    const std::size_t bytes = o.tiny ? (std::size_t{4} << 20) : (std::size_t{1} << 30);
    const int samples = o.tiny ? 2 : 10, repeat = o.tiny ? 1 : 5;
    Arena a(bench);
    auto* data = static_cast<halo_u32x4*>(a.alloc(bytes));
    DevicePtr copy_to = a.alloc(bytes);
    const int64_t vectors = static_cast<int64_t>(bytes / 16);
    const int max_blocks = static_cast<int>(std::min<int64_t>(vectors / HALO_BENCH_THREADS, 1 << 20));
    auto* out = static_cast<uint32_t*>(a.alloc(static_cast<std::size_t>(max_blocks) * HALO_BENCH_THREADS / HALO_WAVE * 4));
    KernelHandle read = nullptr, nop = nullptr;
    if (a.ok()) {
      Result r = bench.fill(data, 0x5a, bytes);
      if (r.ok()) r = bench.kernel("halo_bench_read", &read);
      if (r.ok()) r = bench.kernel("halo_bench_nop", &nop);
      if (r.ok()) r = bench.synchronize();
      if (!r.ok()) {
        report.error("bandwidth", "preparing the bandwidth buffers: " + r.message);
        return;
      }
    }
    if (!a.ok()) {
      report.error("bandwidth", "allocating 2 × " + std::to_string(bytes >> 20) + " MiB: " + a.error());
      return;
    }
    // Grids from a few waves of blocks to one vector per thread; the best is the device's read bandwidth.
    std::vector<int> grids = o.tiny ? std::vector<int>{8, 64} : std::vector<int>{528, 1056, 2112, 4224, 8448, max_blocks};
    double best = 0;
    int best_grid = 0;
    for (int blocks : grids) {
      blocks = std::min(blocks, max_blocks);
      halo_bench_read_args args{data, vectors, static_cast<int64_t>(blocks) * HALO_BENCH_THREADS, out};
      double fastest = INFINITY;
      for (int s = 0; s < samples + 1; s++) {  // the first sample warms up
        const double t = timed(bench, [&] {
          for (int i = 0; i < repeat; i++)
            if (!bench.launch(read, Dim3{static_cast<unsigned>(blocks), 1, 1}, Dim3{HALO_BENCH_THREADS, 1, 1}, &args, sizeof args).ok()) return false;
          return true;
        });
        if (std::isnan(t)) {
          report.error("bandwidth", "halo_bench_read launch failed");
          return;
        }
        if (s > 0) fastest = std::min(fastest, t / repeat);
      }
      const double bw = static_cast<double>(bytes) / fastest;
      std::printf("  read %5zu MiB, grid %7d × %d: %8.1f GB/s (best of %d)\n", bytes >> 20, blocks, HALO_BENCH_THREADS, bw / 1e9, samples);
      report.emit("bandwidth", Json().str("measure", "read").num("bytes", static_cast<double>(bytes)).num("grid", blocks).num("GBps", bw / 1e9));
      if (bw > best) best = bw, best_grid = blocks;
    }
    report.read_bw = best;
    // Copy: cuMemcpyDtoD / hipMemcpyDtoD of the whole buffer; GB/s counts bytes read + written.
    double fastest_copy = INFINITY;
    for (int s = 0; s < samples + 1; s++) {
      const double t = timed(bench, [&] { return bench.copy(copy_to, data, bytes).ok(); });
      if (std::isnan(t)) {
        report.error("bandwidth", "device-to-device copy failed");
        return;
      }
      if (s > 0) fastest_copy = std::min(fastest_copy, t);
    }
    // Launch overhead: no-op kernels back to back, launched one by one and replayed from a graph.
    const int nops = o.tiny ? 20 : 1000;
    halo_bench_nop_args nop_args{0};
    auto queue_nops = [&] {
      for (int i = 0; i < nops; i++)
        if (!bench.launch(nop, Dim3{1, 1, 1}, Dim3{HALO_WAVE, 1, 1}, &nop_args, sizeof nop_args).ok()) return false;
      return true;
    };
    int graph = -1;
    if (bench.graphs() && bench.begin_capture().ok()) {
      const bool queued = queue_nops();
      if (!bench.end_capture(&graph).ok() || !queued) graph = -1;
    }
    double fastest_nop = INFINITY, fastest_graph_nop = INFINITY;
    for (int s = 0; s < samples + 1; s++) {
      const double t = timed(bench, queue_nops);
      const double g = graph >= 0 ? timed(bench, [&] { return bench.replay(graph).ok(); }) : NAN;
      if (s > 0 && !std::isnan(t)) fastest_nop = std::min(fastest_nop, t / nops);
      if (s > 0 && !std::isnan(g)) fastest_graph_nop = std::min(fastest_graph_nop, g / nops);
    }
    bench.drop_graphs();
    nop_s = fastest_nop;
    nop_graph_s = graph >= 0 ? fastest_graph_nop : NAN;
    const double copy_bw = 2.0 * static_cast<double>(bytes) / fastest_copy;
    std::printf(
        "  read bandwidth %.1f GB/s (grid %d × %d); D2D copy %.1f GB/s read + written (%.1f GB/s each way); no-op kernel %.2f µs per launch, %.2f µs per "
        "graph node\n",
        best / 1e9, best_grid, HALO_BENCH_THREADS, copy_bw / 1e9, copy_bw / 2e9, nop_s * 1e6, nop_graph_s * 1e6);
    report.emit("bandwidth", Json()
                                 .str("measure", "summary")
                                 .num("read_GBps_best", best / 1e9)
                                 .num("best_grid", best_grid)
                                 .num("copy_GBps_read_plus_write", copy_bw / 1e9)
                                 .num("nop_launch_us", nop_s * 1e6)
                                 .num("nop_graph_node_us", nop_graph_s * 1e6));
    report.summary.push_back(fmt("read bandwidth %.1f GB/s, D2D copy %.1f GB/s (read + written), no-op kernel %.2f µs per launch / %.2f µs per graph node",
                                 best / 1e9, copy_bw / 1e9, nop_s * 1e6, nop_graph_s * 1e6));
  }
};

// ================================================================================================ 4. GEMV
struct GemvSection {
  const Options& o;
  Report& report;
  Device& device;
  double nop_s, nop_graph_s;  // BandwidthSection's no-op kernel times (NaN when it did not run)

  void execute() {
    struct Shape {
      const char* name;
      int rows, cols, accumulate;
    };
    // The 2B-4T layer (hidden 2560, intermediate 6912, 20 + 2·5 heads of 128); --tiny: the same roles, small.
    const std::vector<Shape> shapes =
        o.tiny ? std::vector<Shape>{{"qkv", 384, 256, 0}, {"o", 256, 256, 1}, {"gate_up", 1382, 256, 0}, {"down", 256, 704, 1}}
               : std::vector<Shape>{{"qkv", 3840, 2560, 0}, {"o", 2560, 2560, 1}, {"gate_up", 13824, 2560, 0}, {"down", 2560, 6912, 1}};
    // Weights rotate over a pool ≥ 5× the H100's 50 MB L2 (≥ 4× the H200's 60 MB): each launch reads its own matrix,
    // last read a whole pool earlier, so it comes from memory — ≥ 8 layers' worth for every shape (30 of gate_up).
    std::size_t pool_bytes = o.tiny ? (std::size_t{512} << 10) : (std::size_t{256} << 20);
    for (const Shape& s : shapes) pool_bytes = std::max(pool_bytes, 8 * (static_cast<std::size_t>(s.rows) * (s.cols / 64) * 16 + 256));
    const int samples = o.tiny ? 1 : 15;
    Arena a(device);
    auto* pool = static_cast<uint8_t*>(a.alloc(pool_bytes));
    // Random valid halo-g2 bytes (every 2-bit code 0, 1 or 2): no column padding at these widths (multiples of 64).
    std::vector<uint8_t> pool_host(pool_bytes);
    {
      uint8_t valid[81];
      int count = 0;
      for (int b = 0; b < 256; b++)
        if ((b & 3) != 3 && (b >> 2 & 3) != 3 && (b >> 4 & 3) != 3 && (b >> 6 & 3) != 3) valid[count++] = static_cast<uint8_t>(b);
      Fast f(o.seed + 99);
      for (auto& byte : pool_host) byte = valid[f.next() % 81];
    }
    if (a.ok() && !device.upload(pool, pool_host.data(), pool_bytes).ok()) {
      report.error("gemv", "uploading the weight pool");
      return;
    }
    if (!a.ok()) {
      report.error("gemv", "allocating the weight pool: " + a.error());
      return;
    }
    KernelHandle matmul = nullptr;
    if (!device.kernel("halo_matmul", &matmul).ok()) {
      report.error("gemv", "halo_matmul is missing from the code object");
      return;
    }
    double layer_s = 0, layer_bytes = 0;
    std::string shares;  // "qkv 71 %, o 52 %, …" for the summary
    int met = 0, measured = 0;
    for (const Shape& s : shapes) {
      const int chunks = s.cols / 64;
      const std::size_t matrix = static_cast<std::size_t>(s.rows) * chunks * 16, stride = (matrix + 255) / 256 * 256;
      const int views = static_cast<int>(pool_bytes / stride);
      Random rnd(o.seed + s.rows);
      std::vector<float> wscales(s.rows), ascales(1, 37.5f), y(s.rows, 0.25f);
      for (auto& v : wscales) v = 0.01f + rnd.unit();
      std::vector<int8_t> codes(static_cast<std::size_t>(chunks) * 64);
      for (auto& v : codes) v = static_cast<int8_t>(rnd.uniform(-128, 127));
      std::vector<int32_t> sums(chunks, 0);
      for (int k = 0; k < chunks * 64; k++) sums[k / 64] += codes[k];
      Arena b(device);
      halo_matmul_args args{nullptr, b.put(wscales), s.rows, chunks, 0, b.put(codes), b.put(ascales), b.put(sums), 1, b.put(y), s.rows, s.accumulate};
      if (!b.ok()) {
        report.error("gemv", std::string(s.name) + ": " + b.error());
        continue;
      }
      const Dim3 grid{static_cast<unsigned>(ceil_div(s.rows, HALO_MATMUL_ROWS)), 1, 1}, block{HALO_MATMUL_THREADS, 1, 1};
      auto queue_all = [&] {
        for (int v = 0; v < views; v++) {
          args.weights = reinterpret_cast<const uint32_t*>(pool + static_cast<std::size_t>(v) * stride);
          if (!device.launch(matmul, grid, block, &args, sizeof args).ok()) return false;
        }
        return true;
      };
      // Graph: the pool's launches captured once and replayed (how a decode step runs); stream: launched directly.
      int graph = -1;
      const bool graphs = device.graphs() && device.begin_capture().ok();
      if (graphs) {
        const bool queued = queue_all();
        if (!device.end_capture(&graph).ok() || !queued) graph = -1;
      }
      auto sample = [&](bool use_graph) {
        const int repeat = o.tiny ? 1 : 4;
        std::vector<double> per_launch;
        for (int i = 0; i < samples + 1; i++) {
          const double t = timed(device, [&] {
            for (int r = 0; r < repeat; r++)
              if (!(use_graph ? device.replay(graph).ok() : queue_all())) return false;
            return true;
          });
          if (std::isnan(t)) return std::vector<double>{};
          if (i > 0) per_launch.push_back(t / (repeat * views));
        }
        std::sort(per_launch.begin(), per_launch.end());
        return per_launch;
      };
      const std::vector<double> graph_times = graph >= 0 ? sample(true) : std::vector<double>{};
      const std::vector<double> stream_times = sample(false);
      if (stream_times.empty()) {
        report.error("gemv", std::string(s.name) + ": launches failed");
        device.drop_graphs();
        continue;
      }
      device.drop_graphs();
      // Correctness at the real shape, for free: y reset, one more launch on the last matrix of the pool, the twin on
      // the host copy of the same bytes.
      {
        std::vector<float> got(s.rows, 0.25f), want = got;
        args.weights = reinterpret_cast<const uint32_t*>(pool + static_cast<std::size_t>(views - 1) * stride);
        const bool ran = device.upload(args.y, got.data(), got.size() * 4).ok() && device.launch(matmul, grid, block, &args, sizeof args).ok() &&
                         device.download(got.data(), args.y, got.size() * 4).ok();
        halo_matmul_args twin = args;
        twin.weights = reinterpret_cast<const uint32_t*>(pool_host.data() + static_cast<std::size_t>(views - 1) * stride);
        twin.wscales = wscales.data();
        twin.codes = codes.data();
        twin.ascales = ascales.data();
        twin.chunk_sums = sums.data();
        twin.y = want.data();
        halo_matmul_twin(twin);
        std::string detail = "device error";
        const bool ok = ran && same(got, want, &detail);
        report.check("conformance", ok, shape("halo_matmul (gemv shape)", {{"rows", s.rows}, {"cols", s.cols}, {"accumulate", s.accumulate}}), detail,
                     Json().str("tolerance", "bit-exact"));
      }
      const double median = stream_times[stream_times.size() / 2];
      const double graph_median = graph_times.empty() ? NAN : graph_times[graph_times.size() / 2];
      const double t = graph_times.empty() ? median : graph_median;
      const double weight_bytes = static_cast<double>(matrix);
      const double bytes =
          weight_bytes + s.rows * 4.0 /* scales */ + chunks * 64.0 + chunks * 4.0 + 4 /* codes, sums, scale */ + s.rows * 4.0 * (s.accumulate ? 2 : 1) /* y */;
      const double gbps = bytes / t, share = gbps / report.read_bw;  // bytes per second
      // The same without a no-op graph node's cost (the launch gap a kernel cannot hide): an estimate of the kernel alone.
      const double work = graph_times.empty() ? t - nop_s : t - nop_graph_s;
      const double work_share = work > 0 ? bytes / work / report.read_bw : NAN;
      layer_s += t;
      layer_bytes += bytes;
      shares += fmt("%s%s %.1f %%", shares.empty() ? "" : ", ", s.name, share * 100);
      measured++;
      met += share >= kGemvTargetShare;
      std::printf(
          "  %-8s %5d × %5d  %9.0f B  graph %7.2f µs  stream %7.2f µs  %7.1f GB/s  %5.1f %% of read bw%s; less a no-op node: %5.1f %%  (%d matrices "
          "rotating, %.0f MiB)\n",
          s.name, s.rows, s.cols, bytes, graph_median * 1e6, median * 1e6, gbps / 1e9, share * 100, share >= kGemvTargetShare ? "" : " (< 85 %)",
          work_share * 100, views, views * static_cast<double>(stride) / 1048576);
      report.emit("gemv", Json()
                              .str("matrix", s.name)
                              .num("rows", s.rows)
                              .num("cols", s.cols)
                              .num("bytes", bytes)
                              .num("weight_bytes", weight_bytes)
                              .num("graph_us_median", graph_median * 1e6)
                              .num("stream_us_median", median * 1e6)
                              .num("nop_us", nop_s * 1e6)
                              .num("nop_graph_node_us", nop_graph_s * 1e6)
                              .num("GBps", gbps / 1e9)
                              .num("share_of_read_bw", share)
                              .num("share_less_nop_node", work_share)
                              .num("target_share", kGemvTargetShare)
                              .num("rotating_matrices", views));
    }
    if (layer_s > 0) {
      const double share = layer_bytes / layer_s / report.read_bw;
      std::printf("  layer (4 matmuls): %.2f µs, %.1f GB/s, %.1f %% of read bandwidth (target ≥ %.0f %% per matmul)\n", layer_s * 1e6,
                  layer_bytes / layer_s / 1e9, share * 100, kGemvTargetShare * 100);
      report.summary.push_back(
          fmt("GEMV n = 1 (graph-replayed, per launch): %s of read bandwidth — target ≥ %.0f %% met by %d of %d; the layer's four: %.2f µs, "
              "%.1f %%",
              shares.c_str(), kGemvTargetShare * 100, met, measured, layer_s * 1e6, share * 100));
    }
  }
};

// ================================================================================================ 5. end to end
struct E2eSection {
  const Options& o;
  Report& report;

  ModelConfig config() const {
    ModelConfig c;
    if (o.tiny) {
      c.hidden = 128, c.intermediate = 192, c.layers = 1, c.heads = 4, c.kv_heads = 2, c.head_dim = 32, c.vocab = 500;
      c.context = 192, c.max_batch_tokens = 64;
    } else {
      // BitNet b1.58 2B-4T: relu², f16 head (untied), f16 KV.
      c.hidden = 2560, c.intermediate = 6912, c.layers = 30, c.heads = 20, c.kv_heads = 5, c.head_dim = 128, c.vocab = 128256;
      c.context = 1024, c.max_batch_tokens = 512;
    }
    c.max_sequences = 2;
    c.rope_theta = 500000;
    c.eps = 1e-5;
    c.relu2 = true;
    return c;
  }

  struct Decode {
    double prompt_s = 0;
    std::vector<double> steps;  // seconds per decode step
    double launches_per_token = 0;
    int launches_per_step = 0;
    std::string error;
  };

  /** `prompt` tokens (in steps of at most max_batch_tokens) then `generate` greedy tokens with device argmax, slot 0. */
  Decode decode(GpuModel& m, int prompt, int generate, uint64_t seed) {
    Decode d;
    const ModelConfig& c = m.config();
    Fast f(seed);
    std::vector<int32_t> tokens(prompt);
    for (auto& t : tokens) t = static_cast<int32_t>(f.next() % static_cast<uint64_t>(c.vocab));
    StepResult r;
    ModelResult s;
    const double t0 = now_s();
    for (int at = 0; at < prompt && s.ok(); at += c.max_batch_tokens) {
      const int n = std::min(c.max_batch_tokens, prompt - at);
      s = step_rows(m, std::vector<int32_t>(tokens.begin() + at, tokens.begin() + at + n), at, 0, StepOutput::Argmax, &r);
    }
    d.prompt_s = now_s() - t0;
    const double launches_before = m.info().launches;
    for (int i = 0; i < generate && s.ok(); i++) {
      const int32_t token = r.ids.empty() || r.ids[0] < 0 ? 0 : r.ids[0];
      const double t = now_s();
      s = step_rows(m, {token}, prompt + i, 0, StepOutput::Argmax, &r);
      d.steps.push_back(now_s() - t);
    }
    const ModelInfo info = m.info();
    d.launches_per_token = (info.launches - launches_before) / std::max(1, generate);
    d.launches_per_step = info.launches_per_step;
    if (!s.ok()) d.error = s.message;
    return d;
  }

  static double median(std::vector<double> v) {
    if (v.empty()) return NAN;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  }

  void execute() {
    const ModelConfig c = config();
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    double t0 = now_s();
    const HostWeights w = random_weights(c, o.seed + 5, threads);
    std::printf("  random ternary weights for %d layers × (%d × %d, %d × %d, %d × %d, %d × %d) + f16 embedding and head: %.1f s on %u threads\n", c.layers,
                matrix_shapes(c)[0][0], matrix_shapes(c)[0][1], matrix_shapes(c)[1][0], matrix_shapes(c)[1][1], matrix_shapes(c)[2][0], matrix_shapes(c)[2][1],
                matrix_shapes(c)[3][0], matrix_shapes(c)[3][1], now_s() - t0, threads);
    const int short_prompt = 64, short_generate = o.tiny ? 8 : 128;
    const int long_prompt = o.tiny ? 96 : 960, long_generate = o.tiny ? 4 : 32;
    const int prefill = o.tiny ? 32 : 512;
    for (bool graphs : {true, false}) {
      t0 = now_s();
      std::unique_ptr<GpuModel> m;
      ModelResult r = load_model(w, o.device, o.code_dir, graphs, HALO_GPU_F16, &m);
      if (!r.ok()) {
        report.error("e2e", fmt("loading the %s model (graphs %s): %s", o.tiny ? "tiny" : "2B-4T", graphs ? "on" : "off", r.message.c_str()));
        continue;
      }
      const ModelInfo info = m->info();
      const double kv_per_position = info.kv_bytes / (static_cast<double>(c.max_sequences) * c.context);  // keys + values, every layer
      const double fixed = info.weights_bytes + info.head_bytes + c.hidden * 2.0;                        // + the token's embedding row
      std::printf("  graphs %s: loaded in %.1f s; weights %.1f MB (halo-g2 + scales + norms), head %.1f MB, embedding %.1f MB, KV %.1f MB, scratch %.1f MB\n",
                  graphs ? "on" : "off", now_s() - t0, info.weights_bytes / 1e6, info.head_bytes / 1e6, info.embedding_bytes / 1e6, info.kv_bytes / 1e6,
                  info.scratch_bytes / 1e6);
      struct Run {
        const char* name;
        int prompt, generate;
      };
      for (const Run& run : {Run{"decode@64", short_prompt, short_generate}, Run{"decode@1024", long_prompt, long_generate}}) {
        const Decode d = decode(*m, run.prompt, run.generate, o.seed + run.prompt);
        if (!d.error.empty()) {
          report.error("e2e", fmt("%s (graphs %s): %s", run.name, graphs ? "on" : "off", d.error.c_str()));
          continue;
        }
        double total = 0;
        for (double s : d.steps) total += s;
        const double steady = median(std::vector<double>(d.steps.begin() + std::min<std::size_t>(4, d.steps.size() - 1), d.steps.end()));
        const double tok_s = d.steps.size() / total;
        const double mean_position = run.prompt + (run.generate - 1) / 2.0;
        const double bytes_per_token = fixed + (mean_position + 1) * kv_per_position;
        const double roofline = report.read_bw / bytes_per_token;
        const double share = tok_s / roofline;
        const bool target = std::string(run.name) == "decode@64";
        std::printf(
            "  %-12s graphs %-3s: %d-token prompt in %.1f ms, then %d tokens: %.1f tok/s (median step %.3f ms → %.1f tok/s); %.0f launches per token; "
            "%.1f MB per token → roofline %.1f tok/s, %.1f %% of it%s\n",
            run.name, graphs ? "on" : "off", run.prompt, d.prompt_s * 1e3, run.generate, tok_s, steady * 1e3, 1 / steady, d.launches_per_token,
            bytes_per_token / 1e6, roofline, share * 100, target ? (share >= kDecodeTargetShare ? " (target ≥ 50 %: met)" : " (target ≥ 50 %: NOT met)") : "");
        report.emit("e2e", Json()
                               .str("run", run.name)
                               .boolean("graphs", graphs)
                               .num("prompt_tokens", run.prompt)
                               .num("generated_tokens", run.generate)
                               .num("prompt_ms", d.prompt_s * 1e3)
                               .num("tok_per_s", tok_s)
                               .num("median_step_ms", steady * 1e3)
                               .num("launches_per_token", d.launches_per_token)
                               .num("launches_per_step", d.launches_per_step)
                               .num("bytes_per_token", bytes_per_token)
                               .num("roofline_tok_per_s", roofline)
                               .num("share_of_roofline", share)
                               .num("target_share", target ? kDecodeTargetShare : NAN));
        report.summary.push_back(fmt("%s graphs %s: %.1f tok/s, %.1f %% of the %.0f tok/s roofline (%.0f launches per token)%s", run.name,
                                     graphs ? "on" : "off", tok_s, share * 100, roofline, d.launches_per_token,
                                     target ? (share >= kDecodeTargetShare ? ", target ≥ 50 % met" : ", target ≥ 50 % NOT met") : ""));
      }
      if (!graphs) continue;
      // Prefill: one step of `prefill` rows on slot 1 from position 0 (its logits row only), three times (the shape's
      // graph is captured on the second and replayed on the third).
      std::vector<int32_t> tokens(prefill);
      Fast f(o.seed + 11);
      for (auto& t : tokens) t = static_cast<int32_t>(f.next() % static_cast<uint64_t>(c.vocab));
      std::vector<double> times;
      StepResult res;
      for (int i = 0; i < 3; i++) {
        const double t = now_s();
        r = step_rows(*m, tokens, 0, 1, StepOutput::Argmax, &res);
        if (!r.ok()) break;
        times.push_back(now_s() - t);
      }
      if (!r.ok()) {
        report.error("e2e", "prefill: " + r.message);
        continue;
      }
      const double best = *std::min_element(times.begin(), times.end());
      std::printf("  prefill %d tokens: %.1f / %.1f / %.1f ms → best %.0f tok/s\n", prefill, times[0] * 1e3, times[1] * 1e3, times[2] * 1e3, prefill / best);
      report.emit("e2e", Json()
                             .str("run", "prefill")
                             .num("prompt_tokens", prefill)
                             .num("first_ms", times[0] * 1e3)
                             .num("best_ms", best * 1e3)
                             .num("tok_per_s", prefill / best));
      report.summary.push_back(fmt("prefill %d: %.0f tok/s", prefill, prefill / best));
    }
  }
};

int usage(const char* message) {
  std::fprintf(stderr,
               "gpu_check: %s\nusage: gpu_check [--device cuda|hip|emulator] [--code-dir DIR] [--bench-code-dir DIR] [--tiny] [--out FILE]\n"
               "                 [--only conformance,model,bandwidth,gemv,e2e] [--emu-threads N] [--seed N]\n",
               message);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // line by line into bench/gpu-check.sh's tee, even if a later section dies
  Options o;
  for (int i = 1; i < argc; i++) {
    const std::string arg = argv[i];
    auto value = [&](std::string* out) {
      if (i + 1 >= argc) return false;
      *out = argv[++i];
      return true;
    };
    std::string v;
    if (arg == "--tiny") o.tiny = true;
    else if (arg == "--device" && value(&o.device)) continue;
    else if (arg == "--code-dir" && value(&o.code_dir)) continue;
    else if (arg == "--bench-code-dir" && value(&o.bench_code_dir)) continue;
    else if (arg == "--out" && value(&o.out)) continue;
    else if (arg == "--emu-threads" && value(&v)) o.emu_threads = static_cast<unsigned>(std::strtoul(v.c_str(), nullptr, 10));
    else if (arg == "--seed" && value(&v)) o.seed = std::strtoull(v.c_str(), nullptr, 10);
    else if (arg == "--only" && value(&v)) {
      for (std::size_t at = 0; at <= v.size();) {
        const std::size_t comma = std::min(v.find(',', at), v.size());
        o.only.push_back(v.substr(at, comma - at));
        at = comma + 1;
      }
      for (const std::string& name : o.only)
        if (name != "conformance" && name != "model" && name != "bandwidth" && name != "gemv" && name != "e2e")
          return usage(("unknown section '" + name + "' in --only").c_str());
    } else return usage(("unknown or incomplete option " + arg).c_str());
  }
  if (o.device != "cuda" && o.device != "hip" && o.device != "emulator") return usage("--device must be cuda, hip or emulator");
  if (o.code_dir.empty() && o.device != "emulator") return usage("--code-dir is required for a GPU (the directory of halo_kernels.<target>.*)");
  if (o.bench_code_dir.empty()) o.bench_code_dir = o.code_dir + "/bench";
  // The emulator's launches use this many OS threads (the emulated model of section 2, or everything on --device emulator).
  halo_emu::set_threads(o.emu_threads);

  Report report;
  if (!o.out.empty() && (report.json = std::fopen(o.out.c_str(), "w")) == nullptr) return usage(("cannot write " + o.out).c_str());
  std::unique_ptr<Device> device;
  Result opened = halo_gpu::open_device(o.device, halo_gpu::CodeObjects{o.code_dir}, &device);
  if (!opened.ok()) {
    std::fprintf(stderr, "gpu_check: the %s device did not open: %s\n", o.device.c_str(), opened.message.c_str());
    return 2;
  }
  const halo_gpu::DeviceInfo& info = device->info();
  report.kind = halo_gpu::kind_name(info.kind), report.gpu = info.name, report.arch = info.arch;
  std::printf("gpu_check: %s (%s, %s), %.1f GiB total, %.1f GiB free; code objects %s%s\n", info.name.c_str(), info.arch.c_str(), report.kind.c_str(),
              info.total_bytes / 1073741824.0, info.free_bytes / 1073741824.0, o.code_dir.empty() ? "(built in)" : o.code_dir.c_str(),
              o.tiny ? "; --tiny shapes" : "");
  const double started = now_s();
  double nop_s = NAN, nop_graph_s = NAN;
  auto header = [&](const char* title) {
    std::printf("\n== %s  [%.1f s]\n", title, now_s() - started);
    std::fflush(stdout);
  };

  // Bandwidth first: every later record carries it.
  if (o.wants("bandwidth")) {
    header("3. bandwidth");
    std::unique_ptr<Device> bench;
    Result b = halo_gpu::open_device(o.device, halo_gpu::CodeObjects{o.bench_code_dir}, &bench);
    if (!b.ok()) {
      report.error("bandwidth", "opening the bench kernels (" + o.bench_code_dir + "): " + b.message);
    } else {
      BandwidthSection section{o, report, *bench};
      section.execute();
      nop_s = section.nop_s;
      nop_graph_s = section.nop_graph_s;
    }
  }
  if (o.wants("conformance")) {
    header("1. conformance: kernels on the device vs their scalar twins on the CPU");
    Conformance{*device, report, Random(o.seed), o.tiny}.run();
  }
  if (o.wants("model")) {
    header("2. model: a tiny random model on the device vs the emulator");
    ModelSection{o, report}.execute();
  }
  if (o.wants("gemv")) {
    header("4. GEMV: halo_matmul n = 1 on the 2B-4T shapes");
    GemvSection{o, report, *device, nop_s, nop_graph_s}.execute();
  }
  if (o.wants("e2e")) {
    header(o.tiny ? "5. end to end (tiny shape)" : "5. end to end: the 2B-4T shape, random ternary weights");
    E2eSection{o, report}.execute();
  }

  std::printf("\n== summary: %s (%s, %s), read bandwidth %.1f GB/s  [%.1f s]\n", report.gpu.c_str(), report.arch.c_str(), report.kind.c_str(),
              report.read_bw / 1e9, now_s() - started);
  std::printf("  conformance + model: %d checks, %d failed\n", report.checks, report.failures);
  for (const std::string& line : report.summary) std::printf("  %s\n", line.c_str());
  report.emit("summary", Json().num("checks", report.checks).num("failures", report.failures).num("seconds", now_s() - started));
  if (report.json != nullptr) std::fclose(report.json);
  return report.failures == 0 ? 0 : 1;
}
