// kernel-check.cpp: a standalone driver (no Node) that checks every kernel table this CPU runs against the scalar _ref
// twins at production sizes (prompts of 1-40 and 512 tokens, 1-16 logit rows, row spans on both sides of every tile and
// thread-split boundary) and on random awkward ones, plus the packer, matmul/attention over the thread pool and the
// pool itself; a table this CPU cannot run prints a `SKIP kernel-check <isa>: <reason>` line. Built by
// scripts/sanitize.mjs with ASan + UBSan (and cross-built for aarch64 by scripts/cross-check.mjs); exits non-zero on
// any mismatch. Buffers are heap vectors of exactly the size a kernel may touch, so an overread is an ASan report.
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <new>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "model.h"

namespace {

/** f32 accumulation of a dot in another order: relative to Σ|w·x| (kernels.test.ts uses the same bound). */
constexpr double MAX_REL_ERROR_HEAD_F32 = 2e-6;
/** float64 sums of exact products in another order: relative to Σ|a·b|. */
constexpr double MAX_REL_ERROR_F64 = 1e-12;
/** float64 attention in another order / split: relative to max |V|. */
constexpr double MAX_REL_ERROR_ATTENTION = 1e-9;

#define HALO_CHECK_SEED 20261123
#include "check_common.h"
std::string tag(const halo_kernels* k, const char* op, int a, int b, int c) {
  return std::string(k->name) + " " + op + " " + std::to_string(a) + "x" + std::to_string(b) + " n=" + std::to_string(c);
}

/** Packs trits by hand into exactly rows·nb blocks (heap, so ASan sees the end). */
std::vector<halo_block_i2> pack(const std::vector<int8_t>& trits, int rows, int cols) {
  const int nb = (cols + 255) / 256;
  std::vector<halo_block_i2> out(static_cast<size_t>(rows) * nb);
  std::memset(out.data(), 0x55, out.size() * sizeof(halo_block_i2));
  for (int r = 0; r < rows; r++) {
    for (int k = 0; k < cols; k++) {
      halo_block_i2& b = out[static_cast<size_t>(r) * nb + (k >> 8)];
      const int within = k & 255, shift = 2 * (within >> 6);
      b.qs[within & 63] = static_cast<uint8_t>((b.qs[within & 63] & ~(3 << shift)) | ((trits[static_cast<size_t>(r) * cols + k] + 1) << shift));
    }
  }
  return out;
}

std::vector<int8_t> random_trits(size_t count) {
  std::vector<int8_t> t(count);
  for (auto& v : t) v = static_cast<int8_t>(uniform(-1, 1));
  return t;
}

void check_packer() {
  for (int trial = 0; trial < 20; trial++) {
    const int rows = uniform(1, 9), cols = uniform(1, 700);
    const auto trits = random_trits(static_cast<size_t>(rows) * cols);
    const auto manual = pack(trits, rows, cols);
    halo::Model scratch;
    if (!scratch.arena.allocate(manual.size() * sizeof(halo_block_i2), false)) return fail("arena allocate");
    std::vector<float> ones(rows, 1.0f);
    halo::Matrix m;
    if (scratch.alloc_matrix(m, rows, cols, cols, ones.data()) != HALO_OK || halo::pack_rows(m, 0, trits.data(), rows) != HALO_OK)
      return fail("pack_rows refused valid trits");
    if (std::memcmp(m.codes, manual.data(), manual.size() * sizeof(halo_block_i2)) != 0) fail("pack_rows differs from the layout in halo_cpu.h");
    std::vector<int8_t> bad(trits);
    bad[bad.size() / 2] = 2;
    if (halo::pack_rows(m, 0, bad.data(), rows) != HALO_BAD_WEIGHTS) fail("pack_rows accepted a trit of 2");
    if (halo::pack_rows(m, 2147483647, trits.data(), 1) != HALO_BAD_ARGUMENT) fail("pack_rows accepted row0 near INT_MAX");
  }
}

// pack_halo_v2 (raw halo-v2 bytes, rows split across the pool) against pack_rows of the same rows decoded by hand;
// the source is exactly rows * ceil(cols / 4) bytes, so ASan sees any over-read.
void check_halo_v2_packer() {
  for (int trial = 0; trial < 20; trial++) {
    const int rows = uniform(1, 200), cols = uniform(1, 700), threads = uniform(1, 3);
    const size_t row_bytes = (static_cast<size_t>(cols) + 3) / 4;
    std::vector<uint8_t> src(row_bytes * rows);
    for (auto& b : src) b = static_cast<uint8_t>(uniform(0, 255));
    std::vector<int8_t> trits(static_cast<size_t>(rows) * cols);
    for (int r = 0; r < rows; r++)
      for (int c = 0; c < cols; c++) {
        const int code = (src[r * row_bytes + c / 4] >> (2 * (c % 4))) & 3;
        trits[static_cast<size_t>(r) * cols + c] = static_cast<int8_t>(code == 0 ? -1 : code == 2 ? 1 : 0);
      }
    const auto manual = pack(trits, rows, cols);
    halo::Model scratch;
    if (!scratch.arena.allocate(manual.size() * sizeof(halo_block_i2), false)) return fail("arena allocate");
    std::vector<float> ones(rows, 1.0f);
    halo::Matrix m;
    if (scratch.alloc_matrix(m, rows, cols, cols, ones.data()) != HALO_OK) return fail("alloc_matrix");
    std::memset(m.codes, 0xAA, manual.size() * sizeof(halo_block_i2));
    if (halo::pack_codes(halo::pool_for(threads), m, halo::PackedSource::HaloV2, 0, src.data(), src.size(), rows) != HALO_OK)
      return fail("pack_halo_v2 refused valid bytes");
    if (std::memcmp(m.codes, manual.data(), manual.size() * sizeof(halo_block_i2)) != 0) fail("pack_halo_v2 differs from pack_rows");
    if (halo::pack_codes(halo::pool_for(threads), m, halo::PackedSource::HaloV2, 0, src.data(), src.size() - 1, rows) != HALO_BAD_ARGUMENT)
      fail("pack_halo_v2 accepted bytes shorter than the rows");
    if (halo::pack_codes(halo::pool_for(threads), m, halo::PackedSource::HaloV2, 2147483647, src.data(), src.size(), 1) != HALO_BAD_ARGUMENT)
      fail("pack_halo_v2 accepted row0 near INT_MAX");
  }
}

void check_gemm(const halo_kernels* k) {
  const halo_kernels* ref = &halo_kernels_ref;
  for (int trial = 0; trial < 60; trial++) {
    const int rows = uniform(1, 40), cols = trial % 7 == 0 ? 256 * uniform(1, 3) : uniform(1, 800), n = uniform(1, 11);
    const int nb = (cols + 255) / 256, stride = nb * 256;
    const auto w = pack(random_trits(static_cast<size_t>(rows) * cols), rows, cols);
    std::vector<int8_t> x(static_cast<size_t>(n) * stride, 0);
    for (int t = 0; t < n; t++)
      for (int c = 0; c < cols; c++) x[static_cast<size_t>(t) * stride + c] = static_cast<int8_t>(trial % 5 == 0 ? (c & 1 ? 127 : -128) : uniform(-128, 127));
    const int r0 = uniform(0, rows - 1), r1 = uniform(r0 + 1, rows), span = r1 - r0;
    std::vector<int32_t> got(static_cast<size_t>(n) * span), want(got.size());
    k->gemm_i2(w.data(), nb, r0, r1, x.data(), stride, n, got.data(), span, nullptr);
    ref->gemm_i2(w.data(), nb, r0, r1, x.data(), stride, n, want.data(), span, nullptr);
    if (got != want) fail(tag(k, "gemm_i2", rows, cols, n));
    std::vector<int32_t> gotb(static_cast<size_t>(n) * span * nb), wantb(gotb.size());
    k->gemm_i2_blocks(w.data(), nb, r0, r1, x.data(), stride, n, gotb.data(), span * nb);
    ref->gemm_i2_blocks(w.data(), nb, r0, r1, x.data(), stride, n, wantb.data(), span * nb);
    if (gotb != wantb) fail(tag(k, "gemm_i2_blocks", rows, cols, n));
  }
}

template <typename W, typename Head>
void compare_head(const halo_kernels* k, const char* op, int rows, int hidden, int n, const std::vector<W>& w, const std::vector<float>& x, Head head,
                  Head head_ref, const std::vector<float>& weight_value) {
  const int r0 = uniform(0, rows - 1), r1 = uniform(r0 + 1, rows), span = r1 - r0, stride = span + uniform(0, 3);
  std::vector<float> got(static_cast<size_t>(n) * stride, -7.0f), want(got.size(), -7.0f);
  head(r0, r1, got.data(), stride);
  head_ref(r0, r1, want.data(), stride);
  for (int t = 0; t < n; t++) {
    for (int r = r0; r < r1; r++) {
      double magnitude = 0;
      for (int h = 0; h < hidden; h++)
        magnitude += std::fabs(static_cast<double>(weight_value[static_cast<size_t>(r) * hidden + h]) * x[static_cast<size_t>(t) * hidden + h]);
      const size_t i = static_cast<size_t>(t) * stride + (r - r0);
      if (!(std::fabs(got[i] - want[i]) <= MAX_REL_ERROR_HEAD_F32 * magnitude + 1e-30)) return fail(tag(k, op, rows, hidden, n));
    }
    for (int gap = span; gap < stride; gap++)
      if (got[static_cast<size_t>(t) * stride + gap] != -7.0f) return fail(tag(k, op, rows, hidden, n) + " wrote past its rows");
  }
  (void)w;
}

void check_heads(const halo_kernels* k) {
  const halo_kernels* ref = &halo_kernels_ref;
  for (int trial = 0; trial < 30; trial++) {
    const int rows = uniform(1, 37), hidden = uniform(1, 300), n = uniform(1, 6);
    std::vector<float> x(static_cast<size_t>(n) * hidden), wf(static_cast<size_t>(rows) * hidden), w16v(wf.size()), w8v(wf.size());
    for (auto& v : x) v = normal();
    for (auto& v : wf) v = normal();
    std::vector<uint16_t> w16(wf.size());
    std::vector<int8_t> w8(wf.size());
    std::vector<float> scales(rows);
    for (size_t i = 0; i < wf.size(); i++) {
      w16[i] = halo_f32_to_f16_ref(wf[i]);
      w16v[i] = halo_f16_to_f32_ref(w16[i]);
      w8[i] = static_cast<int8_t>(uniform(-127, 127));
    }
    for (int r = 0; r < rows; r++) {
      scales[r] = 0.01f * uniform(1, 100);
      for (int h = 0; h < hidden; h++) w8v[static_cast<size_t>(r) * hidden + h] = w8[static_cast<size_t>(r) * hidden + h] * scales[r];
    }
    using Fn = std::function<void(int, int, float*, int)>;
    compare_head<uint16_t, Fn>(
        k, "head_f16", rows, hidden, n, w16, x, [&](int a, int b, float* y, int s) { k->head_f16(w16.data(), hidden, a, b, x.data(), n, y, s); },
        [&](int a, int b, float* y, int s) { ref->head_f16(w16.data(), hidden, a, b, x.data(), n, y, s); }, w16v);
    std::vector<uint16_t> wb(wf.size());  // bf16: the high half of each f32
    std::vector<float> wbv(wf.size());
    for (size_t i = 0; i < wf.size(); i++) {
      uint32_t bits;
      std::memcpy(&bits, &wf[i], 4);
      wb[i] = static_cast<uint16_t>(bits >> 16);
      wbv[i] = halo_bf16_to_f32(wb[i]);
    }
    compare_head<uint16_t, Fn>(
        k, "head_bf16", rows, hidden, n, wb, x, [&](int a, int b, float* y, int s) { k->head_bf16(wb.data(), hidden, a, b, x.data(), n, y, s); },
        [&](int a, int b, float* y, int s) { ref->head_bf16(wb.data(), hidden, a, b, x.data(), n, y, s); }, wbv);
    compare_head<float, Fn>(
        k, "head_f32", rows, hidden, n, wf, x, [&](int a, int b, float* y, int s) { k->head_f32(wf.data(), hidden, a, b, x.data(), n, y, s); },
        [&](int a, int b, float* y, int s) { ref->head_f32(wf.data(), hidden, a, b, x.data(), n, y, s); }, wf);
    const int q_stride = HALO_HEAD_I8_STRIDE(hidden);
    std::vector<int8_t> xq(static_cast<size_t>(n) * q_stride);
    std::vector<double> xs(n);
    halo_head_i8_activations(x.data(), n, hidden, q_stride, xq.data(), xs.data());
    compare_head<int8_t, Fn>(
        k, "head_i8", rows, hidden, n, w8, x,
        [&](int a, int b, float* y, int s) { k->head_i8(w8.data(), scales.data(), hidden, a, b, xq.data(), xs.data(), q_stride, n, y, s); },
        [&](int a, int b, float* y, int s) { ref->head_i8(w8.data(), scales.data(), hidden, a, b, xq.data(), xs.data(), q_stride, n, y, s); }, w8v);
  }
}

// halo_head_i4_row's codes against its definition: each weight within half a step of c·sub·scale unless clamped at ±7,
// the largest group's sub-scale 255, padding codes 0 and the stored row sum Σ sub·Σc.
void check_head_i4_row() {
  for (int trial = 0; trial < 60; trial++) {
    const int hidden = uniform(1, 300), stride = HALO_HEAD_I8_STRIDE(hidden), groups = stride / HALO_HEAD_I4_GROUP;
    std::vector<float> x(hidden);
    for (int h = 0; h < hidden; h++) x[h] = normal() * (trial % 3 == 0 ? std::ldexp(1.0f, uniform(-20, 4)) : 1.0f);
    if (trial % 5 == 1) std::fill(x.begin(), x.begin() + std::min(hidden, 64), 0.0f);  // an all-zero group
    if (trial == 7) std::fill(x.begin(), x.end(), 0.0f);                               // an all-zero row
    if (trial % 11 == 2) x[uniform(0, hidden - 1)] = std::nanf("");                    // NaN is ignored, coded 0
    std::vector<uint8_t> codes(stride / 2, 0xee), sub(groups, 0xee);
    float scale = -1;
    int32_t sum = -1;
    halo_head_i4_row(x.data(), hidden, codes.data(), sub.data(), &scale, &sum);
    int32_t want_sum = 0;
    int top = 0;
    for (int g = 0; g < groups; g++) {
      top = std::max(top, static_cast<int>(sub[g]));
      const double step = static_cast<double>(sub[g]) * scale;
      int group_sum = 0;
      for (int j = 0; j < HALO_HEAD_I4_GROUP; j++) {
        const int h = g * HALO_HEAD_I4_GROUP + j;
        const uint8_t byte = codes[g * 32 + (j & 31)];
        const int c = (j < 32 ? byte & 15 : byte >> 4) - 8;
        group_sum += c;
        if (c < -7 || c > 7) return fail("head_i4_row code out of range");
        if (h >= hidden || std::isnan(x[h])) {
          if (c != 0) return fail("head_i4_row padding or NaN not coded 0");
          continue;
        }
        const double err = std::fabs(static_cast<double>(x[h]) - c * step);
        const bool clamped = (c == 7 || c == -7) && std::fabs(static_cast<double>(x[h])) >= 7 * step;
        if (!(err <= 0.5 * step * (1 + 1e-12) || clamped || step == 0)) return fail("head_i4_row error above half a step");
      }
      want_sum += sub[g] * group_sum;
    }
    if (sum != want_sum) return fail("head_i4_row row sum");
    bool any = false;
    for (float v : x) any = any || (v != 0 && !std::isnan(v));
    if (any && (top != 255 || !(scale > 0))) return fail("head_i4_row: the largest group's sub-scale is not 255");
    if (!any && (scale != 0 || sum != 0 || top != 0)) return fail("head_i4_row: an all-zero row needs scale 0");
  }
}

// head_i4 on every path equals the scalar twin exactly (the integer sum is exact, one float64 formula), including the
// largest hidden size with the largest codes, sub-scales and activations (the int32 lane bound).
void check_head_i4(const halo_kernels* k) {
  for (int trial = 0; trial < 31; trial++) {
    const bool extreme = trial == 30;
    const int rows = extreme ? 3 : uniform(1, 37), hidden = extreme ? HALO_HEAD_I4_MAX_HIDDEN : uniform(1, 300), n = extreme ? 2 : uniform(1, 6);
    if (!head_i4_trial(k->head_i4, rows, hidden, n, extreme)) return fail(tag(k, "head_i4", rows, hidden, n));
  }
}

void check_dots_and_conversions(const halo_kernels* k) {
  const halo_kernels* ref = &halo_kernels_ref;
  // quantize_i8: codes and their sum identical to the scalar twin, ties and clamps included.
  for (int trial = 0; trial < 40; trial++) {
    const int n = uniform(0, 300);
    std::vector<float> x(n);
    for (int i = 0; i < n; i++) x[i] = trial % 4 == 0 ? 0.5f * uniform(-300, 300) : normal();
    const double s = trial % 4 == 0 ? 1.0 : 127.0 / (0.5 + 0.05 * uniform(0, 100));
    std::vector<int8_t> q(n), q_ref(n);
    const int32_t sum = k->quantize_i8(x.data(), n, s, q.data());
    const int32_t sum_ref = ref->quantize_i8(x.data(), n, s, q_ref.data());
    if (sum != sum_ref || q != q_ref) fail(tag(k, "quantize_i8", n, 0, 1));
  }
  // attn_tile: float64 scores, softmax and weighted sums against the scalar twin, f32, f16 and int8 rows.
  for (int trial = 0; trial < 45; trial++) {
    // Every other trial a head dimension that is a multiple of 8 (the NEON tile's vector path; others fall back); every
    // fourth as many query heads as a prompt's rows give one call (up to 16 rows × 4 heads).
    const int group = trial % 4 == 3 ? uniform(8, 64) : uniform(1, 5), hd = trial % 2 == 0 ? 8 * uniform(1, 17) : uniform(1, 140),
              span = uniform(1, HALO_ATTN_TILE);
    const int stride = hd + uniform(0, 9), kv = trial % 3, scale_stride = uniform(1, 4);
    std::vector<float> q(static_cast<size_t>(group) * hd), kf(static_cast<size_t>(span) * stride), vf(kf.size());
    for (auto& v : q) v = normal();
    for (auto& v : kf) v = 3 * normal();
    for (auto& v : vf) v = normal();
    std::vector<uint16_t> k16(kf.size()), v16(vf.size());
    ref->f32_to_f16(k16.data(), kf.data(), static_cast<int>(kf.size()));
    ref->f32_to_f16(v16.data(), vf.data(), static_cast<int>(vf.size()));
    std::vector<int8_t> k8(kf.size()), v8(vf.size());
    std::vector<float> ks(static_cast<size_t>(span) * scale_stride), vs(ks.size());
    for (int p = 0; p < span; p++) {
      halo_kv_i8_row(kf.data() + static_cast<size_t>(p) * stride, hd, k8.data() + static_cast<size_t>(p) * stride, &ks[static_cast<size_t>(p) * scale_stride]);
      halo_kv_i8_row(vf.data() + static_cast<size_t>(p) * stride, hd, v8.data() + static_cast<size_t>(p) * stride, &vs[static_cast<size_t>(p) * scale_stride]);
    }
    const void* kp = kv == HALO_KV_F16 ? static_cast<const void*>(k16.data()) : kv == HALO_KV_I8 ? static_cast<const void*>(k8.data()) : kf.data();
    const void* vp = kv == HALO_KV_F16 ? static_cast<const void*>(v16.data()) : kv == HALO_KV_I8 ? static_cast<const void*>(v8.data()) : vf.data();
    std::vector<double> scratch(HALO_ATTN_SCRATCH(group, hd, span)), out(static_cast<size_t>(group) * (hd + 2)), out_ref(out.size());
    k->attn_tile(q.data(), group, hd, kp, vp, kv, stride, span, ks.data(), vs.data(), scale_stride, 0.125, scratch.data(), out.data());
    ref->attn_tile(q.data(), group, hd, kp, vp, kv, stride, span, ks.data(), vs.data(), scale_stride, 0.125, scratch.data(), out_ref.data());
    for (size_t i = 0; i < out.size(); i++)
      if (!(std::fabs(out[i] - out_ref[i]) <= MAX_REL_ERROR_F64 * (1 + std::fabs(out_ref[i])))) {
        fail(tag(k, ("attn_tile kv=" + std::to_string(kv)).c_str(), span, hd, group));
        break;
      }
  }
  // silu_mul: float64 with a vector exp against std::exp; the float32 results may differ by one rounding step.
  for (int trial = 0; trial < 20; trial++) {
    const int n = uniform(1, 300);
    std::vector<float> gate(n), up(n), out(n), out_ref(n);
    for (int i = 0; i < n; i++) {
      gate[i] = trial % 5 == 0 ? 0.5f * uniform(-1600, 1600) : 4 * normal();  // some past e^±709 and ReLU-like tails
      up[i] = normal();
    }
    k->silu_mul(gate.data(), up.data(), n, out.data());
    ref->silu_mul(gate.data(), up.data(), n, out_ref.data());
    for (int i = 0; i < n; i++)
      if (!(std::fabs(out[i] - out_ref[i]) <= std::ldexp(std::fabs(out_ref[i]), -23) + 1e-37)) {
        fail(tag(k, "silu_mul", n, i, trial));
        break;
      }
  }
  // scale_dots: the GEMM epilogue, bit-exact (the same two float64 roundings on every path), row tails and y strides.
  for (int trial = 0; trial < 40; trial++) {
    const int count = uniform(1, 70), n = uniform(1, 5), y_stride = count + uniform(0, 9);
    std::vector<int32_t> raw(static_cast<size_t>(count) * n), correction(n);
    std::vector<float> act(n), rows(count), out(static_cast<size_t>(n) * y_stride, 7.0f), out_ref(out);
    for (auto& v : raw) v = trial % 4 == 0 ? uniform(-(1 << 30), 1 << 30) : uniform(-300000, 300000);
    for (auto& v : correction) v = uniform(-100000, 100000);
    for (auto& v : act) v = static_cast<float>(127.0 / (1e-5 + std::fabs(normal())));
    for (auto& v : rows) v = static_cast<float>(std::fabs(normal()) + 1e-3);
    k->scale_dots(raw.data(), count, n, correction.data(), act.data(), rows.data(), out.data(), y_stride);
    ref->scale_dots(raw.data(), count, n, correction.data(), act.data(), rows.data(), out_ref.data(), y_stride);
    if (std::memcmp(out.data(), out_ref.data(), sizeof(float) * out.size()) != 0) fail(tag(k, "scale_dots", count, n, trial));
  }
  // gemv_i2_sparse (the sparse down lane): exact-size buffers (ASan sees a read past the masks or the activations),
  // ragged row tiles, tile ranges that do not start at 0, any column list in any order; the scalar twin against the
  // trit dots, the table against the scalar twin. Every eighth trial is extreme (all −1 weights, −128 activations:
  // sums far past the int16 range the SIMD paths accumulate in between widenings).
  for (int trial = 0; trial < 30; trial++) {
    const bool extreme = trial % 8 == 0;
    const int rows = uniform(1, 700), cols = extreme ? uniform(300, 1200) : uniform(1, 400), nb = (cols + 255) / 256;
    const int tiles = HALO_SPARSE_TILES(rows);
    std::vector<int8_t> trits(static_cast<size_t>(rows) * cols);
    for (auto& t : trits) t = static_cast<int8_t>(extreme ? -1 : uniform(-1, 1));
    const auto w = pack(trits, rows, cols);
    std::vector<uint8_t> masks(static_cast<size_t>(tiles) * cols * 64);
    halo_sparse_masks(w.data(), nb, rows, cols, 0, tiles, masks.data());
    std::vector<int8_t> x(cols);
    std::vector<int32_t> nz;
    for (int c = 0; c < cols; c++) {
      x[c] = static_cast<int8_t>(extreme ? -128 : uniform(0, 2) == 0 ? 0 : uniform(-128, 127));
      if (x[c] != 0 || uniform(0, 9) == 0) nz.push_back(c);  // zeros may be listed too
    }
    for (size_t i = nz.size(); i > 1; i--) std::swap(nz[i - 1], nz[uniform(0, static_cast<int>(i) - 1)]);
    const int g0 = uniform(0, tiles - 1), g1 = uniform(g0 + 1, tiles), span = (g1 - g0) * HALO_SPARSE_TILE;
    std::vector<int32_t> oracle(span, 0), got(span, 0x5a5a5a5a), want(span, 0x5a5a5a5a);
    for (int i = 0; i < span; i++) {
      const int r = g0 * HALO_SPARSE_TILE + i;
      if (r >= rows) continue;
      for (int c : nz) oracle[i] += trits[static_cast<size_t>(r) * cols + c] * x[c];
    }
    ref->gemv_i2_sparse(masks.data(), tiles, g0, g1, x.data(), nz.data(), static_cast<int>(nz.size()), want.data());
    if (want != oracle) fail(tag(ref, "gemv_i2_sparse against the trit dots", rows, cols, trial));
    k->gemv_i2_sparse(masks.data(), tiles, g0, g1, x.data(), nz.data(), static_cast<int>(nz.size()), got.data());
    if (got != want) fail(tag(k, "gemv_i2_sparse", rows, cols, trial));
  }
  // f16 → f32: all 65536 patterns, bit-exact (NaN stays NaN).
  std::vector<uint16_t> all(65536);
  for (int i = 0; i < 65536; i++) all[i] = static_cast<uint16_t>(i);
  std::vector<float> wide(65536), wide_ref(65536);
  k->f16_to_f32(wide.data(), all.data(), 65536);
  ref->f16_to_f32(wide_ref.data(), all.data(), 65536);
  for (int i = 0; i < 65536; i++)
    if (std::memcmp(&wide[i], &wide_ref[i], 4) != 0 && !(std::isnan(wide[i]) && std::isnan(wide_ref[i]))) {
      fail(tag(k, "f16_to_f32", i, 0, 1));
      break;
    }
  // f32 → f16: random bit patterns plus ties, overflow, subnormals; odd lengths.
  const int m = 4099;
  std::vector<float> src(m);
  for (int i = 0; i < m; i++) {
    uint32_t bits = static_cast<uint32_t>(rng());
    if (i % 3 == 0) bits = (bits & 0x8000FFFFu) | (static_cast<uint32_t>(uniform(100, 150)) << 23);  // near the f16 range
    std::memcpy(&src[i], &bits, 4);
  }
  src[0] = 65520.0f;
  src[1] = 5.960464477539063e-08f;
  src[2] = -0.0f;
  src[3] = INFINITY;
  std::vector<uint16_t> half(m), half_ref(m);
  k->f32_to_f16(half.data(), src.data(), m);
  ref->f32_to_f16(half_ref.data(), src.data(), m);
  for (int i = 0; i < m; i++) {
    const bool both_nan = (half[i] & 0x7fff) > 0x7c00 && (half_ref[i] & 0x7fff) > 0x7c00;
    if (half[i] != half_ref[i] && !both_nan) {
      fail(tag(k, "f32_to_f16", i, 0, 1));
      break;
    }
  }
}

/**
 * One matmul (rows × cols ternary weights, scale blocks of `block`, n tokens per-token or q8k quantised) over pools of
 * each worker count in `threads` against the scalar kernels on one worker: the pool hands out row chunks of
 * max(16, rows / (8·workers) rounded up to 16), so large `rows` give each gemm_i2 call more than 64 rows.
 */
void matmul_case(const halo_kernels* k, int rows, int cols, int n, bool per_token, int block, std::initializer_list<int> threads) {
  const auto trits = random_trits(static_cast<size_t>(rows) * cols);
  std::vector<float> scales(static_cast<size_t>(rows) * (cols / block));
  for (auto& s : scales) s = 0.5f + 0.01f * uniform(0, 100);
  halo::Model scratch;
  if (!scratch.arena.allocate(static_cast<size_t>(rows) * ((cols + 255) / 256) * 64, false)) return fail("arena");
  halo::Matrix m;
  if (scratch.alloc_matrix(m, rows, cols, block, scales.data()) != HALO_OK || halo::pack_rows(m, 0, trits.data(), rows) != HALO_OK) return fail("matrix setup");
  std::vector<float> x(static_cast<size_t>(n) * cols);
  for (auto& v : x) v = normal();
  halo::Activations a;
  a.quantize(&halo_kernels_ref, x.data(), n, cols, per_token);
  std::vector<float> want(static_cast<size_t>(n) * rows);
  halo::matmul(halo::pool_for(1), &halo_kernels_ref, m, a, want.data(), rows, nullptr);
  for (int workers : threads) {
    std::vector<float> got(want.size());
    halo::matmul(halo::pool_for(workers), k, m, a, got.data(), rows, nullptr);
    if (got != want) fail(tag(k, per_token ? "matmul per-token" : "matmul q8k", rows, cols, n) + " threads=" + std::to_string(workers));
  }
}

/** matmul and attention over pools of 1..3 workers against the scalar kernels on one worker. */
void check_pool_ops(const halo_kernels* k) {
  for (int trial = 0; trial < 12; trial++) {
    const bool per_token = trial % 2 == 0;
    const int rows = uniform(1, 300), cols = per_token ? uniform(1, 700) : 256 * uniform(1, 3), n = uniform(1, 9);
    const int block = per_token ? (trial % 4 == 0 ? cols : (cols % 2 == 0 ? cols / 2 : cols)) : (trial % 3 == 0 ? 256 : cols);
    matmul_case(k, rows, cols, n, per_token, block, {1, 2, 3});
  }
  // Production token counts through the per-token path the BitNet models take (one scale per matrix): chunks of
  // 208 / 112 / 80 rows for 1600 rows on 1 / 2 / 3 workers (every call past the 64-row tile, none a multiple of it),
  // 12 tokens (the AVX-512 6-token tile twice), 40 and a 512-token prompt (80-row chunks on one worker).
  for (int n : {12, 13, 40}) matmul_case(k, 1600, 256, n, true, 256, {1, 2, 3});
  matmul_case(k, 530, 256, 512, true, 256, {1, 2});
  const int wide = uniform(257, 700);
  matmul_case(k, 129, wide, 16, true, wide, {1, 3});  // rows around the 128 boundary, a 3-block row with a tail
  for (int trial = 0; trial < 15; trial++) {
    const int kvh = uniform(1, 3), group = uniform(1, 5), heads = kvh * group, hd = 2 * uniform(1, 40), length = uniform(1, 90), n = uniform(1, 4);
    const int kv_dtype = trial % 3;
    const size_t kv = static_cast<size_t>(length) * kvh * hd;
    std::vector<float> q(static_cast<size_t>(n) * heads * hd), keys(kv), values(kv);
    for (auto& v : q) v = normal();
    for (auto& v : keys) v = normal();
    for (auto& v : values) v = normal();
    std::vector<uint16_t> k16(kv), v16(kv);
    halo_kernels_ref.f32_to_f16(k16.data(), keys.data(), static_cast<int>(kv));
    halo_kernels_ref.f32_to_f16(v16.data(), values.data(), static_cast<int>(kv));
    std::vector<int8_t> k8(kv), v8(kv);
    std::vector<float> ks(static_cast<size_t>(length) * kvh), vs(ks.size());
    for (size_t row = 0; row < ks.size(); row++) {
      halo_kv_i8_row(keys.data() + row * hd, hd, k8.data() + row * hd, &ks[row]);
      halo_kv_i8_row(values.data() + row * hd, hd, v8.data() + row * hd, &vs[row]);
    }
    const void* kp = kv_dtype == HALO_KV_F16  ? static_cast<const void*>(k16.data())
                     : kv_dtype == HALO_KV_I8 ? static_cast<const void*>(k8.data())
                                              : keys.data();
    const void* vp = kv_dtype == HALO_KV_F16  ? static_cast<const void*>(v16.data())
                     : kv_dtype == HALO_KV_I8 ? static_cast<const void*>(v8.data())
                                              : values.data();
    std::vector<const void*> kptr(n, kp), vptr(n, vp);
    std::vector<const float*> ksptr(n, ks.data()), vsptr(n, vs.data());
    std::vector<int32_t> last(n);
    for (auto& l : last) l = uniform(0, length - 1);
    std::vector<float> want(q.size());
    halo::AttentionArgs ref_args{q.data(), heads * hd, kptr.data(), vptr.data(), kv_dtype, ksptr.data(), vsptr.data(), n,
                                 heads,    kvh,        hd,          last.data(), 0,        want.data()};
    halo::attention(halo::pool_for(1), &halo_kernels_ref, ref_args);
    double vmax = 0;
    for (float v : values) vmax = std::max(vmax, static_cast<double>(std::fabs(v)));
    for (int threads = 1; threads <= 3; threads++) {
      std::vector<float> got(q.size());
      halo::AttentionArgs args{
          q.data(),  heads * hd, kptr.data(), vptr.data(), kv_dtype, ksptr.data(), vsptr.data(), n, heads, kvh, hd, last.data(), uniform(0, 2) * uniform(1, 40),
          got.data()};
      halo::attention(halo::pool_for(threads), k, args);
      for (size_t i = 0; i < got.size(); i++)
        if (!(std::fabs(got[i] - want[i]) <= MAX_REL_ERROR_ATTENTION * vmax + 1e-6 * std::fabs(want[i]))) {
          fail(tag(k, ("attention kv=" + std::to_string(kv_dtype)).c_str(), length, hd, n));
          break;
        }
    }
  }
}

/** halo_kv_i8_row: the int8 KV rounding the reference's roundRowThroughInt8 defines, on fixed rows. */
void check_kv_i8_row() {
  // absmax 127 gives scale 1: codes are the values rounded half to even; NaN stores 0.
  const float row[6] = {127, 2.5f, -2.5f, 3.5f, 0.5f, NAN};
  const int8_t want[6] = {127, 2, -2, 4, 0, 0};
  int8_t codes[6];
  float scale = -1;
  halo_kv_i8_row(row, 6, codes, &scale);
  if (scale != 1.0f || std::memcmp(codes, want, 6) != 0) fail("kv_i8_row ties");
  // Any row: |f32(code·scale) − x| ≤ absmax·(0.5/127 + 1e-6), codes in [−127, 127], the largest value at ±127.
  for (int trial = 0; trial < 200; trial++) {
    const int n = uniform(1, 130);
    std::vector<float> x(n);
    float absmax = 0;
    for (auto& v : x) {
      v = static_cast<float>(normal() * std::pow(10.0, uniform(-8, 8)));
      absmax = std::max(absmax, std::fabs(v));
    }
    std::vector<int8_t> q(n);
    halo_kv_i8_row(x.data(), n, q.data(), &scale);
    for (int i = 0; i < n; i++) {
      const float back = static_cast<float>(q[i]) * scale;
      if (q[i] < -127 || !(std::fabs(back - x[i]) <= absmax * (0.5 / 127 + 1e-6))) {
        fail(tag(&halo_kernels_ref, "kv_i8_row", n, i, trial));
        break;
      }
      if (std::fabs(x[i]) == absmax && std::abs(q[i]) != 127) {
        fail(tag(&halo_kernels_ref, "kv_i8_row absmax", n, i, trial));
        break;
      }
    }
  }
  // An all-zero row stores zero codes and scale 0.
  const float zeros[3] = {0, -0.0f, 0};
  int8_t zc[3] = {1, 1, 1};
  halo_kv_i8_row(zeros, 3, zc, &scale);
  if (scale != 0 || zc[0] != 0 || zc[1] != 0 || zc[2] != 0) fail("kv_i8_row zeros");
}

/**
 * KV slots (contract 2): write_kv → read_kv as attention reads (f32 as is, f16 through the kernels' conversion, int8
 * as f32(code·scale) of halo_kv_i8_row); export_slot equals read_kv row by row; import_slot writes what write_kv does;
 * copy_slot copies exactly `length` positions (codes and int8 scales) and nothing past them; every slot's bytes past
 * kv_slot_bytes stay untouched (the regions are page-rounded mmaps, so this stands in for ASan there); bad slots and
 * lengths are refused.
 */
void check_kv_slots(const halo_kernels* k) {
  for (int trial = 0; trial < 12; trial++) {
    halo::Model m;
    const int kv_heads = uniform(1, 3), head_dim = 2 * uniform(1, 20);
    m.c = {8, 8, uniform(1, 3), kv_heads, kv_heads, head_dim, 8, uniform(1, 20), 3, 10000.0, 1e-5, true, trial % 3, true};
    m.k = k;
    m.pool = halo::pool_for(2);
    m.slots.resize(3);
    const size_t slot_bytes = m.c.kv_slot_bytes();
    for (auto& slot : m.slots) {
      slot = std::make_unique<halo::Region>();
      if (!slot->allocate(slot_bytes, false)) return fail("kv slot allocate");
      std::memset(slot->data, 0xA5, slot->bytes);
    }
    const int kv_dim = kv_heads * head_dim, ctx = m.c.context, layers = m.c.layers;
    const std::string what = tag(k, (std::string("kv slots dtype ") + std::to_string(m.c.kv_dtype)).c_str(), layers, kv_dim, ctx);
    // Rows of slot 0, through write_kv; what read_kv must give back.
    std::vector<float> key(kv_dim), value(kv_dim), want_k(static_cast<size_t>(layers) * ctx * kv_dim), want_v(want_k.size());
    std::vector<uint16_t> half(kv_dim);
    for (int l = 0; l < layers; l++)
      for (int p = 0; p < ctx; p++) {
        for (int i = 0; i < kv_dim; i++) {
          key[i] = normal() * (i % head_dim == 0 ? 50.0f : 1.0f);
          value[i] = (i / head_dim) == 1 ? 0.0f : normal();  // a zero KV head: int8 scale 0
        }
        m.write_kv(0, l, p, key.data(), value.data());
        float* wk = want_k.data() + (static_cast<size_t>(l) * ctx + p) * kv_dim;
        float* wv = want_v.data() + (static_cast<size_t>(l) * ctx + p) * kv_dim;
        for (int which = 0; which < 2; which++) {
          const float* src = which == 0 ? key.data() : value.data();
          float* dst = which == 0 ? wk : wv;
          if (m.c.kv_dtype == HALO_KV_F32) {
            std::memcpy(dst, src, sizeof(float) * kv_dim);
          } else if (m.c.kv_dtype == HALO_KV_F16) {
            k->f32_to_f16(half.data(), src, kv_dim);
            k->f16_to_f32(dst, half.data(), kv_dim);
          } else {
            for (int h = 0; h < kv_heads; h++) {
              std::vector<int8_t> codes(head_dim);
              float scale = 0;
              halo_kv_i8_row(src + h * head_dim, head_dim, codes.data(), &scale);
              for (int d = 0; d < head_dim; d++) dst[h * head_dim + d] = static_cast<float>(codes[d]) * scale;
            }
          }
        }
      }
    std::vector<float> got_k(want_k.size()), got_v(want_v.size());
    if (m.export_slot(0, ctx, got_k.data(), got_v.data()) != HALO_OK) return fail(what + " export");
    if (std::memcmp(got_k.data(), want_k.data(), want_k.size() * sizeof(float)) != 0 ||
        std::memcmp(got_v.data(), want_v.data(), want_v.size() * sizeof(float)) != 0)
      fail(what + " write_kv → export");
    // import into slot 1 writes the same bytes write_kv wrote into slot 0 (the rows given are the originals' reads,
    // which for f32 / f16 are the originals; for int8, compare the reads).
    if (m.import_slot(1, ctx, got_k.data(), got_v.data()) != HALO_OK) return fail(what + " import");
    std::vector<float> again_k(want_k.size()), again_v(want_v.size());
    m.export_slot(1, ctx, again_k.data(), again_v.data());
    for (size_t i = 0; i < again_k.size(); i++) {
      const double tolerance = m.c.kv_dtype == HALO_KV_I8 ? std::fabs(want_k[i]) * std::ldexp(1.0, -22) : 0.0;
      if (!(std::fabs(again_k[i] - want_k[i]) <= tolerance) || !(std::fabs(again_v[i] - want_v[i]) <= std::fabs(want_v[i]) * std::ldexp(1.0, -22))) {
        fail(what + " import → export at " + std::to_string(i));
        break;
      }
    }
    // copy a prefix of slot 0 over slot 2 (which holds other rows first: slot 0's, negated and halved): positions <
    // length are slot 0's, the rest still slot 2's own.
    std::vector<float> other_k(got_k.size()), other_v(got_v.size());
    for (size_t i = 0; i < other_k.size(); i++) {
      other_k[i] = -0.5f * got_k[i];
      other_v[i] = -0.5f * got_v[i] + 0.25f;
    }
    m.import_slot(2, ctx, other_k.data(), other_v.data());
    std::vector<float> before_k(want_k.size()), before_v(want_v.size());
    m.export_slot(2, ctx, before_k.data(), before_v.data());
    const int length = uniform(0, ctx);
    if (m.copy_slot(0, 2, length) != HALO_OK) return fail(what + " copy");
    m.export_slot(2, ctx, again_k.data(), again_v.data());
    for (int l = 0; l < layers; l++)
      for (int p = 0; p < ctx; p++) {
        const size_t at = (static_cast<size_t>(l) * ctx + p) * kv_dim;
        const std::vector<float>& ek = p < length ? want_k : before_k;
        const std::vector<float>& ev = p < length ? want_v : before_v;
        if (std::memcmp(again_k.data() + at, ek.data() + at, sizeof(float) * kv_dim) != 0 ||
            std::memcmp(again_v.data() + at, ev.data() + at, sizeof(float) * kv_dim) != 0) {
          fail(what + " copy of " + std::to_string(length) + " at layer " + std::to_string(l) + " position " + std::to_string(p));
          l = layers;
          break;
        }
      }
    // Nothing written past a slot's kv_slot_bytes.
    for (int s = 0; s < 3; s++) {
      const uint8_t* bytes = static_cast<const uint8_t*>(m.slots[s]->data);
      for (size_t i = slot_bytes; i < m.slots[s]->bytes; i++)
        if (bytes[i] != 0xA5) {
          fail(what + " wrote past slot " + std::to_string(s) + "'s bytes at " + std::to_string(i));
          break;
        }
    }
    // Refusals: unknown slots, lengths outside [0, context].
    m.slots[2].reset();
    if (m.copy_slot(0, 2, 0) != HALO_BAD_ARGUMENT || m.copy_slot(2, 0, 0) != HALO_BAD_ARGUMENT || m.copy_slot(0, 3, 0) != HALO_BAD_ARGUMENT ||
        m.copy_slot(0, 1, ctx + 1) != HALO_BAD_ARGUMENT || m.copy_slot(0, 1, -1) != HALO_BAD_ARGUMENT ||
        m.export_slot(2, 0, nullptr, nullptr) != HALO_BAD_ARGUMENT || m.import_slot(-1, 0, nullptr, nullptr) != HALO_BAD_ARGUMENT ||
        m.import_slot(0, ctx + 1, nullptr, nullptr) != HALO_BAD_ARGUMENT)
      fail(what + " refusals");
  }
}

/** argmax_rows / top_k_rows on rows with ties, NaN and ±∞ (the TypeScript twins are checked against them in cpu-forward.test.ts). */
void check_argmax_top_k() {
  const float row[7] = {NAN, 2, -INFINITY, 5, 5, NAN, 1};
  int32_t best = -1;
  halo::argmax_rows(row, 1, 7, &best);
  if (best != 3) fail("argmax_rows tie / NaN");
  const float none[2] = {NAN, -INFINITY};
  best = 7;
  halo::argmax_rows(none, 1, 2, &best);
  if (best != -1) fail("argmax_rows of nothing above -inf");
  int32_t ids[7];
  float values[7];
  halo::top_k_rows(row, 1, 7, 7, ids, values);
  const int32_t want[7] = {3, 4, 1, 6, 2, 0, 5};
  if (std::memcmp(ids, want, sizeof(want)) != 0 || values[0] != 5 || !std::isnan(values[6])) fail("top_k_rows order");
}

void check_thread_pool() {
  for (int threads : {1, 2, 3, 5}) {
    halo::ThreadPool pool(threads);
    std::vector<std::atomic<int>> hits(threads);
    auto hammer = [&] {
      for (int job = 0; job < 300; job++) pool.run([&](int i) { hits[i].fetch_add(1); });
    };
    std::thread other(hammer);  // two callers: jobs are serialised, none lost
    hammer();
    other.join();
    // A job that throws on one worker: run() rethrows it to the caller after all workers finished, and the pool
    // keeps working (no std::terminate on a pool thread, no lost worker).
    for (int thrower = 0; thrower < threads; thrower++) {
      bool caught = false;
      try {
        pool.run([&](int i) {
          if (i == thrower) throw std::bad_alloc();
        });
      } catch (const std::bad_alloc&) { caught = true; }
      if (!caught) fail("thread pool: a job's exception on worker " + std::to_string(thrower) + " did not reach run()'s caller");
    }
    hammer();
    for (int i = 0; i < threads; i++)
      if (hits[i].load() != 900)
        fail("thread pool: worker " + std::to_string(i) + " of " + std::to_string(threads) + " ran " + std::to_string(hits[i].load()) + " jobs, expected 900");
  }
}

// ---------------------------------------------------------------- production sizes, every table on one input set
//
// The random trials above stay below the sizes that run in production. Here every SIMD table this CPU runs sees the
// same inputs at those sizes: prompts of 1–40 tokens and 512, decode batches of 1–16 logit rows, row spans on both
// sides of the kernels' blocking (4-row micro tiles, 64-row L2 tiles, 128; the AVX-512 6-token tile from 12 tokens on
// and the 4-token one; 16-row head tiles, 8-token head passes, 256-wide head chunks), from a row offset r0 > 0. The
// scalar twin itself is held to definitions computed here from the unpacked inputs (trit dots; float64, int8 and int4
// head dots), so no pass compares a table with itself.

constexpr int32_t kSentinel = 0x5a5a5a5a;
constexpr float kSentinelF = -7.0f;
int sized_cases = 0;

/** The SIMD tables this CPU runs, best first (what the scalar twin is compared with). */
std::vector<const halo_kernels*> simd_tables() {
  std::vector<const halo_kernels*> out;
  for (const std::string& isa : halo::available_isas())
    if (isa != "scalar") out.push_back(halo::kernels_for(isa));
  return out;
}

/** Where y (n tokens × span values, y_stride apart) first differs from want, or "" when equal (sentinel gaps included). */
template <typename T>
std::string first_difference(const std::vector<T>& got, const std::vector<T>& want, int y_stride, int span) {
  for (size_t i = 0; i < got.size(); i++) {
    if (std::memcmp(&got[i], &want[i], sizeof(T)) == 0) continue;
    const int t = static_cast<int>(i / y_stride), r = static_cast<int>(i % y_stride);
    if (r >= span) return " wrote into the y stride gap of token " + std::to_string(t);
    return " at token " + std::to_string(t) + " row +" + std::to_string(r) + ": " + std::to_string(got[i]) + " vs " + std::to_string(want[i]);
  }
  return "";
}

/**
 * gemm_i2 and gemm_i2_blocks on rows [r0, r0 + span) (r0 0–5, up to 2 more rows after them), n tokens of `cols`
 * activations (x stride nb·256, or 64 more with bytes of 127 between tokens that are not activations; the buffer ends at
 * the last token's nb·256 bytes), y with 0–3 sentinel columns past each token's rows. Extreme: every trit +1 and every
 * activation −128, the largest sums (no intermediate may saturate).
 */
void gemm_sized(const std::vector<const halo_kernels*>& simd, int span, int n, int cols, bool extreme) {
  sized_cases++;
  const int r0 = uniform(0, 5), rows = r0 + span + uniform(0, 2), r1 = r0 + span, nb = (cols + 255) / 256;
  const int x_stride = nb * 256 + (uniform(0, 2) == 0 ? 64 : 0), y_stride = span + uniform(0, 3);
  std::vector<int8_t> trits(static_cast<size_t>(rows) * cols);
  for (auto& t : trits) t = static_cast<int8_t>(extreme ? 1 : uniform(-1, 1));
  const auto w = pack(trits, rows, cols);
  std::vector<int8_t> x(static_cast<size_t>(n - 1) * x_stride + static_cast<size_t>(nb) * 256, 0);  // zeros past cols, as Activations pads
  for (int t = 0; t < n; t++) {
    int8_t* xt = x.data() + static_cast<size_t>(t) * x_stride;
    for (int c = 0; c < cols; c++) xt[c] = static_cast<int8_t>(extreme ? -128 : uniform(-128, 127));
    if (t + 1 < n)
      for (int c = nb * 256; c < x_stride; c++) xt[c] = 127;
  }
  const std::string what =
      " rows [" + std::to_string(r0) + ", " + std::to_string(r1) + ") cols=" + std::to_string(cols) + " n=" + std::to_string(n) + (extreme ? " extreme" : "");
  // The definition: Σ_k (trit + 1)·x over the real columns (the padding codes are 1, against zero activations).
  const size_t y_size = static_cast<size_t>(n - 1) * y_stride + span;
  std::vector<int32_t> oracle(y_size, kSentinel), want(y_size, kSentinel);
  for (int t = 0; t < n; t++)
    for (int r = 0; r < span; r++) {
      const int8_t* tr = trits.data() + static_cast<size_t>(r0 + r) * cols;
      const int8_t* xt = x.data() + static_cast<size_t>(t) * x_stride;
      int32_t sum = 0;
      for (int c = 0; c < cols; c++) sum += (tr[c] + 1) * xt[c];
      oracle[static_cast<size_t>(t) * y_stride + r] = sum;
    }
  halo_kernels_ref.gemm_i2(w.data(), nb, r0, r1, x.data(), x_stride, n, want.data(), y_stride, nullptr);
  std::string diff = first_difference(want, oracle, y_stride, span);
  if (!diff.empty()) return fail("scalar gemm_i2 against the trit dots" + what + diff);
  for (const halo_kernels* k : simd) {
    std::vector<int32_t> got(y_size, kSentinel);
    k->gemm_i2(w.data(), nb, r0, r1, x.data(), x_stride, n, got.data(), y_stride, w.data());
    diff = first_difference(got, want, y_stride, span);
    if (!diff.empty()) fail(std::string(k->name) + " gemm_i2" + what + diff);
  }
  if (n > 40) return;  // per-block dots run one token at a time in production (matmul's blocked path)
  const int yb_stride = span * nb + uniform(0, 3);
  const size_t yb_size = static_cast<size_t>(n - 1) * yb_stride + static_cast<size_t>(span) * nb;
  std::vector<int32_t> wantb(yb_size, kSentinel);
  halo_kernels_ref.gemm_i2_blocks(w.data(), nb, r0, r1, x.data(), x_stride, n, wantb.data(), yb_stride);
  for (int t = 0; t < n; t++)
    for (int r = 0; r < span; r++) {
      int32_t sum = 0;
      for (int b = 0; b < nb; b++) sum += wantb[static_cast<size_t>(t) * yb_stride + static_cast<size_t>(r) * nb + b];
      if (sum != oracle[static_cast<size_t>(t) * y_stride + r]) return fail("scalar gemm_i2_blocks: the blocks do not add up to the trit dots" + what);
    }
  for (const halo_kernels* k : simd) {
    std::vector<int32_t> gotb(yb_size, kSentinel);
    k->gemm_i2_blocks(w.data(), nb, r0, r1, x.data(), x_stride, n, gotb.data(), yb_stride);
    diff = first_difference(gotb, wantb, yb_stride, span * nb);
    if (!diff.empty()) fail(std::string(k->name) + " gemm_i2_blocks" + what + diff);
  }
}

void check_gemm_sizes(const std::vector<const halo_kernels*>& simd) {
  // Every prompt length 1–40 and 512 tokens, on spans past the 64-row tile (65: one row in the second tile) and past
  // 128 (131: three tiles, a 3-row micro tail); every fifth length 2–3 blocks wide, others one block, whole or cut.
  for (int n = 1; n <= 40; n++) {
    gemm_sized(simd, 65, n, n % 5 == 0 ? uniform(257, 768) : n % 2 == 0 ? 256 : uniform(1, 256), false);
    gemm_sized(simd, 131, n, n % 3 == 0 ? uniform(1, 256) : 256, false);
  }
  gemm_sized(simd, 65, 512, 256, false);
  gemm_sized(simd, 130, 512, uniform(1, 256), false);
  // Row spans on both sides of each row boundary (the 4-row micro tile, 64, 128) at token counts on both sides of the
  // token tiles (1, 2–3, 4, 5–11, 6-token tiles from 12, 16 + tails).
  for (int span : {1, 2, 3, 4, 5, 7, 8, 63, 64, 65, 127, 128, 129})
    for (int n : {1, 2, 3, 4, 5, 6, 7, 8, 11, 12, 13, 16, 17, 18}) gemm_sized(simd, span, n, uniform(1, 300), false);
  // The largest sums.
  gemm_sized(simd, 9, 4, 512, true);
  gemm_sized(simd, 65, 12, 256, true);
  gemm_sized(simd, 70, 40, 768, true);
}

/**
 * Every LM head kind on rows [r0, r0 + span) (r0 0–20) of a head `hidden` wide, n logit rows, y with 0–3 sentinel
 * columns past each row's span. The scalar twin against float64 dots of the same weights (f16, bf16, f32: within
 * MAX_REL_ERROR_HEAD_F32 of Σ|w·x|) and integer dots of the codes (int8, int4: its formula, bit for bit); each SIMD
 * table against the scalar twin (float heads within the same bound, integer heads bit for bit).
 */
void head_sized(const std::vector<const halo_kernels*>& simd, int span, int n, int hidden) {
  sized_cases++;
  const int r0 = uniform(0, 20), rows = r0 + span + uniform(0, 2), r1 = r0 + span, y_stride = span + uniform(0, 3);
  const size_t y_size = static_cast<size_t>(n - 1) * y_stride + span;
  const std::string what = " rows [" + std::to_string(r0) + ", " + std::to_string(r1) + ") hidden=" + std::to_string(hidden) + " n=" + std::to_string(n);
  std::vector<float> x(static_cast<size_t>(n) * hidden), wf(static_cast<size_t>(rows) * hidden);
  for (auto& v : x) v = normal();
  for (auto& v : wf) v = normal();
  // Float heads: the weights each kind stores and the values it reads back.
  std::vector<uint16_t> w16(wf.size()), wb(wf.size());
  std::vector<float> w16v(wf.size()), wbv(wf.size());
  for (size_t i = 0; i < wf.size(); i++) {
    w16[i] = halo_f32_to_f16_ref(wf[i]);
    w16v[i] = halo_f16_to_f32_ref(w16[i]);
    uint32_t bits;
    std::memcpy(&bits, &wf[i], 4);
    wb[i] = static_cast<uint16_t>(bits >> 16);
    wbv[i] = halo_bf16_to_f32(wb[i]);
  }
  using Head = std::function<void(const halo_kernels*, float*)>;
  auto float_head = [&](const char* kind, const std::vector<float>& values, const Head& head) {
    std::vector<float> want(y_size, kSentinelF);
    head(&halo_kernels_ref, want.data());
    std::vector<double> bound(y_size, 0.0);
    for (int t = 0; t < n; t++)
      for (int r = 0; r < span; r++) {
        double dot = 0, magnitude = 0;
        for (int h = 0; h < hidden; h++) {
          const double p = static_cast<double>(values[static_cast<size_t>(r0 + r) * hidden + h]) * x[static_cast<size_t>(t) * hidden + h];
          dot += p;
          magnitude += std::fabs(p);
        }
        const size_t i = static_cast<size_t>(t) * y_stride + r;
        bound[i] = MAX_REL_ERROR_HEAD_F32 * magnitude + 1e-30;
        if (!(std::fabs(want[i] - dot) <= bound[i]))
          return fail(std::string("scalar ") + kind + " against float64 dots" + what + " at token " + std::to_string(t) + " row +" + std::to_string(r));
      }
    for (const halo_kernels* k : simd) {
      std::vector<float> got(y_size, kSentinelF);
      head(k, got.data());
      for (size_t i = 0; i < y_size; i++) {
        const bool gap = static_cast<int>(i % y_stride) >= span;
        if (gap ? got[i] != kSentinelF : !(std::fabs(got[i] - want[i]) <= bound[i])) {
          fail(std::string(k->name) + " " + kind + what + (gap ? " wrote into the y stride gap" : " differs") + " at token " + std::to_string(i / y_stride) +
               " row +" + std::to_string(i % y_stride));
          break;
        }
      }
    }
  };
  float_head("head_f16", w16v, [&](const halo_kernels* k, float* y) { k->head_f16(w16.data(), hidden, r0, r1, x.data(), n, y, y_stride); });
  float_head("head_bf16", wbv, [&](const halo_kernels* k, float* y) { k->head_bf16(wb.data(), hidden, r0, r1, x.data(), n, y, y_stride); });
  float_head("head_f32", wf, [&](const halo_kernels* k, float* y) { k->head_f32(wf.data(), hidden, r0, r1, x.data(), n, y, y_stride); });

  // Integer heads: the logit rows quantised as a step does, int8 codes with row scales, int4 rows from halo_head_i4_row.
  const int stride = HALO_HEAD_I8_STRIDE(hidden), groups = stride / HALO_HEAD_I4_GROUP;
  std::vector<int8_t> xq(static_cast<size_t>(n) * stride), w8(wf.size());
  std::vector<double> xs(n);
  halo_head_i8_activations(x.data(), n, hidden, stride, xq.data(), xs.data());
  std::vector<float> scales(rows), scales4(rows);
  for (auto& v : w8) v = static_cast<int8_t>(uniform(-127, 127));
  for (auto& v : scales) v = 0.01f * uniform(1, 100);
  std::vector<uint8_t> codes4(static_cast<size_t>(rows) * stride / 2), sub(static_cast<size_t>(rows) * groups);
  std::vector<int32_t> sums(rows);
  for (int r = 0; r < rows; r++)
    halo_head_i4_row(wf.data() + static_cast<size_t>(r) * hidden, hidden, codes4.data() + static_cast<size_t>(r) * stride / 2,
                     sub.data() + static_cast<size_t>(r) * groups, &scales4[r], &sums[r]);
  // The definitions: f32(f64(Σ q·w) · scale / s) with the integer dot from the codes.
  std::vector<float> oracle8(y_size, kSentinelF), oracle4(y_size, kSentinelF);
  for (int t = 0; t < n; t++)
    for (int r = 0; r < span; r++) {
      const int8_t* q = xq.data() + static_cast<size_t>(t) * stride;
      int64_t dot8 = 0, dot4 = 0;
      for (int h = 0; h < hidden; h++) dot8 += static_cast<int64_t>(q[h]) * w8[static_cast<size_t>(r0 + r) * hidden + h];
      for (int g = 0; g < groups; g++) {
        int64_t group = 0;
        for (int j = 0; j < HALO_HEAD_I4_GROUP; j++) {
          const uint8_t byte = codes4[static_cast<size_t>(r0 + r) * stride / 2 + g * 32 + (j & 31)];
          group += static_cast<int64_t>(q[g * HALO_HEAD_I4_GROUP + j]) * ((j < 32 ? byte & 15 : byte >> 4) - 8);
        }
        dot4 += group * sub[static_cast<size_t>(r0 + r) * groups + g];
      }
      const size_t i = static_cast<size_t>(t) * y_stride + r;
      oracle8[i] = static_cast<float>(static_cast<double>(dot8) * scales[r0 + r] / xs[t]);
      oracle4[i] = static_cast<float>(static_cast<double>(dot4) * scales4[r0 + r] / xs[t]);
    }
  auto integer_head = [&](const char* kind, const std::vector<float>& oracle, const Head& head) {
    std::vector<float> want(y_size, kSentinelF);
    head(&halo_kernels_ref, want.data());
    std::string diff = first_difference(want, oracle, y_stride, span);
    if (!diff.empty()) return fail(std::string("scalar ") + kind + " against integer dots of its codes" + what + diff);
    for (const halo_kernels* k : simd) {
      std::vector<float> got(y_size, kSentinelF);
      head(k, got.data());
      diff = first_difference(got, want, y_stride, span);
      if (!diff.empty()) fail(std::string(k->name) + " " + kind + what + diff);
    }
  };
  integer_head("head_i8", oracle8,
               [&](const halo_kernels* k, float* y) { k->head_i8(w8.data(), scales.data(), hidden, r0, r1, xq.data(), xs.data(), stride, n, y, y_stride); });
  integer_head("head_i4", oracle4, [&](const halo_kernels* k, float* y) {
    k->head_i4(codes4.data(), sub.data(), scales4.data(), sums.data(), hidden, r0, r1, xq.data(), xs.data(), stride, n, y, y_stride);
  });
}

void check_head_sizes(const std::vector<const halo_kernels*>& simd) {
  const int hiddens[] = {1, 31, 32, 33, 255, 256, 257, 300, 513};
  // Every logit row count of a decode batch (1–16: 8-row passes and their tails) on spans past one and two 16-row tiles.
  for (int n = 1; n <= 16; n++) {
    head_sized(simd, 17, n, hiddens[n % 9]);
    head_sized(simd, 40, n, hiddens[(n + 4) % 9]);
  }
  // Row spans on both sides of the 16-row tile (and the thread split's 16-row alignment) at 7, 8, 9 and 16 logit rows.
  for (int span : {1, 15, 16, 17, 32, 33})
    for (int n : {7, 8, 9, 16}) head_sized(simd, span, n, uniform(1, 600));
}

}  // namespace

int main() {
  check_packer();
  check_halo_v2_packer();
  check_thread_pool();
  check_kv_i8_row();
  check_head_i4_row();
  check_argmax_top_k();
  // Tables built into this binary that this CPU cannot run: reported as skipped (sanitize lists them), not left out.
  const std::vector<std::pair<const char*, const char*>> compiled = {
#if defined(__x86_64__)
      {"amx", "; its tiles are checked on the software model by amx-check"},
      {"avx512vnni", ""},
      {"avx2", ""},
#elif defined(__aarch64__)
      {"neondotprod", ""},
      {"neon", ""},
#endif
  };
  for (const auto& [isa, note] : compiled)
    if (halo::kernels_for(isa) == nullptr) std::printf("SKIP kernel-check %s: this CPU lacks the %s instructions%s\n", isa, isa, note);
  const auto simd = simd_tables();
  const auto started = std::chrono::steady_clock::now();
  check_gemm_sizes(simd);
  check_head_sizes(simd);
  std::string names = "scalar (against trit, float64 and integer dots)";
  for (const halo_kernels* k : simd) names += std::string(", ") + k->name;
  std::printf("production sizes: %d gemm / head cases on %s in %.1f s: %s\n", sized_cases, names.c_str(),
              std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count(), failures == 0 ? "ok" : "FAILED");
  for (const std::string& isa : halo::available_isas()) {
    const halo_kernels* k = halo::kernels_for(isa);
    // The twin comparisons would compare the scalar kernels with themselves: the sweeps above held them to the definitions.
    if (k != &halo_kernels_ref) {
      check_gemm(k);
      check_heads(k);
      check_head_i4(k);
      check_dots_and_conversions(k);
    }
    check_pool_ops(k);
    check_kv_slots(k);
    std::printf("%s: %s\n", isa.c_str(), failures == 0 ? "ok" : "FAILED");
  }
  if (failures != 0) {
    std::fprintf(stderr, "%d failure(s)\n", failures);
    return 1;
  }
  return 0;
}
