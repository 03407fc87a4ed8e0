// avx512_emulate.h: lane-exact software models of the AVX-512 (F, BW, VNNI) and AVX2 intrinsics that
// native/head_i4_avx512.inc uses, so test/native/avx512-i4-check.cpp can run that kernel's lane logic on CPUs without
// AVX-512. Include instead of <immintrin.h>, never with it.
//
// Semantics follow the Intel Intrinsics Guide / SDM (https://www.intel.com/content/www/us/en/docs/intrinsics-guide):
//   _mm512_maddubs_epi16: i16[i] = saturate16(u8(a[2i])·s8(b[2i]) + u8(a[2i+1])·s8(b[2i+1]))
//   _mm512_dpwssd_epi32:  i32[i] = src[i] + s16(a[2i])·s16(b[2i]) + s16(a[2i+1])·s16(b[2i+1])   (wrapping)
//   _mm256_srli_epi16:    each u16 lane shifted right, counts above 15 give 0
//   _mm512_inserti64x4 / _mm512_extracti64x4_epi64: the 256-bit half selected by imm & 1
//   _mm512_cvtepi32_epi64: 8 i32 sign-extended to i64; _mm512_reduce_add_epi64: wrapping sum of the 8 lanes.
#ifndef HALO_AVX512_EMULATE_H
#define HALO_AVX512_EMULATE_H

#include <cstdint>
#include <cstring>

struct __m256i {
  uint8_t b[32];
};
struct __m512i {
  uint8_t b[64];
};

#define _MM_HINT_T0 1
#define _MM_HINT_T1 2
inline void _mm_prefetch(const char*, int) {}

namespace halo_avx512_emu {
template <typename T, typename V>
inline T lane(const V& v, int i) {
  T out;
  std::memcpy(&out, v.b + i * sizeof(T), sizeof(T));
  return out;
}
template <typename T, typename V>
inline void set_lane(V& v, int i, T value) {
  std::memcpy(v.b + i * sizeof(T), &value, sizeof(T));
}
}  // namespace halo_avx512_emu

inline __m512i _mm512_setzero_si512() { return __m512i{}; }
inline __m512i _mm512_set1_epi8(char c) {
  __m512i v;
  std::memset(v.b, static_cast<unsigned char>(c), 64);
  return v;
}
inline __m512i _mm512_set1_epi16(short s) {
  __m512i v;
  for (int i = 0; i < 32; i++) halo_avx512_emu::set_lane<int16_t>(v, i, s);
  return v;
}
inline __m256i _mm256_loadu_si256(const __m256i* p) {
  __m256i v;
  std::memcpy(v.b, p, 32);
  return v;
}
inline __m512i _mm512_loadu_si512(const void* p) {
  __m512i v;
  std::memcpy(v.b, p, 64);
  return v;
}
inline __m256i _mm256_srli_epi16(__m256i a, int count) {
  __m256i v;
  for (int i = 0; i < 16; i++) {
    const uint16_t x = halo_avx512_emu::lane<uint16_t>(a, i);
    halo_avx512_emu::set_lane<uint16_t>(v, i, count > 15 ? 0 : static_cast<uint16_t>(x >> count));
  }
  return v;
}
inline __m512i _mm512_castsi256_si512(__m256i a) {
  __m512i v{};  // the upper half is undefined on hardware; zero here
  std::memcpy(v.b, a.b, 32);
  return v;
}
inline __m256i _mm512_castsi512_si256(__m512i a) {
  __m256i v;
  std::memcpy(v.b, a.b, 32);
  return v;
}
inline __m512i _mm512_inserti64x4(__m512i a, __m256i b, int imm) {
  std::memcpy(a.b + 32 * (imm & 1), b.b, 32);
  return a;
}
inline __m256i _mm512_extracti64x4_epi64(__m512i a, int imm) {
  __m256i v;
  std::memcpy(v.b, a.b + 32 * (imm & 1), 32);
  return v;
}
inline __m512i _mm512_and_si512(__m512i a, __m512i b) {
  for (int i = 0; i < 64; i++) a.b[i] &= b.b[i];
  return a;
}
inline __m512i _mm512_xor_si512(__m512i a, __m512i b) {
  for (int i = 0; i < 64; i++) a.b[i] ^= b.b[i];
  return a;
}
inline __m512i _mm512_sub_epi8(__m512i a, __m512i b) {
  for (int i = 0; i < 64; i++) a.b[i] = static_cast<uint8_t>(a.b[i] - b.b[i]);
  return a;
}
inline __m512i _mm512_maddubs_epi16(__m512i a, __m512i b) {
  __m512i v;
  for (int i = 0; i < 32; i++) {
    const int sum = static_cast<int>(a.b[2 * i]) * static_cast<int8_t>(b.b[2 * i]) + static_cast<int>(a.b[2 * i + 1]) * static_cast<int8_t>(b.b[2 * i + 1]);
    halo_avx512_emu::set_lane<int16_t>(v, i, static_cast<int16_t>(sum > 32767 ? 32767 : sum < -32768 ? -32768 : sum));
  }
  return v;
}
inline __m512i _mm512_dpwssd_epi32(__m512i src, __m512i a, __m512i b) {
  using halo_avx512_emu::lane;
  for (int i = 0; i < 16; i++) {
    const int64_t sum = static_cast<int64_t>(lane<int32_t>(src, i)) + lane<int16_t>(a, 2 * i) * lane<int16_t>(b, 2 * i) +
                        lane<int16_t>(a, 2 * i + 1) * lane<int16_t>(b, 2 * i + 1);
    halo_avx512_emu::set_lane<int32_t>(src, i, static_cast<int32_t>(static_cast<uint32_t>(sum)));  // wraps
  }
  return src;
}
inline __m512i _mm512_cvtepi32_epi64(__m256i a) {
  __m512i v;
  for (int i = 0; i < 8; i++) halo_avx512_emu::set_lane<int64_t>(v, i, halo_avx512_emu::lane<int32_t>(a, i));
  return v;
}
inline __m512i _mm512_add_epi64(__m512i a, __m512i b) {
  using halo_avx512_emu::lane;
  for (int i = 0; i < 8; i++)
    halo_avx512_emu::set_lane<int64_t>(a, i, static_cast<int64_t>(static_cast<uint64_t>(lane<int64_t>(a, i)) + static_cast<uint64_t>(lane<int64_t>(b, i))));
  return a;
}
inline int64_t _mm512_reduce_add_epi64(__m512i a) {
  uint64_t sum = 0;
  for (int i = 0; i < 8; i++) sum += static_cast<uint64_t>(halo_avx512_emu::lane<int64_t>(a, i));
  return static_cast<int64_t>(sum);
}

#endif
