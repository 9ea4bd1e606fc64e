// AVX-512 (F, BW, VL, DQ) kernels: two 32-value blocks per 512-bit step (compiled with those
// flags; called only when the CPU has them). Activation quantization is AVX2's (a 32-value
// block fills one 256-bit register pair already).
#include <immintrin.h>

#include "runtime/kernels.h"

namespace gemkit::runtime {

namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// 64 int8 products summed per 4 -> 16 int32 lanes -> floats; lanes 0-7 are the first block's,
// 8-15 the second's. y takes x's sign (no _mm512_sign_epi8: negate where x < 0).
inline __m512 dot_i8_64(__m512i x, __m512i y) {
  const __m512i ax = _mm512_abs_epi8(x);
  const __mmask64 negative = _mm512_movepi8_mask(x);
  const __m512i sy = _mm512_mask_sub_epi8(y, negative, _mm512_setzero_si512(), y);
  const __m512i dot16 = _mm512_maddubs_epi16(ax, sy);
  return _mm512_cvtepi32_ps(_mm512_madd_epi16(dot16, _mm512_set1_epi16(1)));
}

inline __m512 two_scales(float a, float b) { return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1); }

// The 32 nibbles of a Q4_0 block as unsigned bytes 0..15 (low nibbles first, ggml's order).
inline __m256i q4_nibbles(const BlockQ4& b) {
  const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
  const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
  return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
}

inline __m256i load32(const int8_t* p) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)); }

float dot_q8_0(const void* w, const BlockQ8* x, int64_t n) {
  const BlockQ8* b = static_cast<const BlockQ8*>(w);
  const int64_t nb = n / 32;
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(load32(b[i].qs)), load32(b[i + 1].qs), 1);
    const __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(load32(x[i].qs)), load32(x[i + 1].qs), 1);
    acc = _mm512_fmadd_ps(two_scales(half(b[i].d) * half(x[i].d), half(b[i + 1].d) * half(x[i + 1].d)), dot_i8_64(qw, qx), acc);
  }
  // An odd last block: the portable kernel.
  return _mm512_reduce_add_ps(acc) + (i < nb ? portable_kernels().dot_q8_0(b + i, x + i, (nb - i) * 32) : 0.0f);
}

// The four scales d_w * d_x of blocks i..i+3, converted together (one vcvtph2ps instead of
// eight scalar conversions), spread to 16 lanes as two blocks per vector.
inline void four_scales(const BlockQ4* b, const BlockQ8* x, __m512* first, __m512* second) {
  const __m128i wd = _mm_setr_epi16(short(b[0].d), short(b[1].d), short(b[2].d), short(b[3].d), 0, 0, 0, 0);
  const __m128i xd = _mm_setr_epi16(short(x[0].d), short(x[1].d), short(x[2].d), short(x[3].d), 0, 0, 0, 0);
  const __m512 s = _mm512_castps128_ps512(_mm_mul_ps(_mm_cvtph_ps(wd), _mm_cvtph_ps(xd)));
  *first = _mm512_permutexvar_ps(_mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1), s);
  *second = _mm512_permutexvar_ps(_mm512_setr_epi32(2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3), s);
}

float dot_q4_0(const void* w, const BlockQ8* x, int64_t n) {
  const BlockQ4* b = static_cast<const BlockQ4*>(w);
  const int64_t nb = n / 32;
  __m512 acc = _mm512_setzero_ps(), acc2 = _mm512_setzero_ps();
  int64_t i = 0;
  const __m512i eight = _mm512_set1_epi8(8), ones = _mm512_set1_epi16(1);
  for (; i + 4 <= nb; i += 4) {
    __m512 s0, s1;
    four_scales(b + i, x + i, &s0, &s1);
    const __m512i n0 = _mm512_inserti64x4(_mm512_castsi256_si512(q4_nibbles(b[i])), q4_nibbles(b[i + 1]), 1);
    const __m512i n1 = _mm512_inserti64x4(_mm512_castsi256_si512(q4_nibbles(b[i + 2])), q4_nibbles(b[i + 3]), 1);
    const __m512i x0 = _mm512_inserti64x4(_mm512_castsi256_si512(load32(x[i].qs)), load32(x[i + 1].qs), 1);
    const __m512i x1 = _mm512_inserti64x4(_mm512_castsi256_si512(load32(x[i + 2].qs)), load32(x[i + 3].qs), 1);
    const __m512i p0 = _mm512_sub_epi16(_mm512_maddubs_epi16(n0, x0), _mm512_maddubs_epi16(eight, x0));
    const __m512i p1 = _mm512_sub_epi16(_mm512_maddubs_epi16(n1, x1), _mm512_maddubs_epi16(eight, x1));
    acc = _mm512_fmadd_ps(s0, _mm512_cvtepi32_ps(_mm512_madd_epi16(p0, ones)), acc);
    acc2 = _mm512_fmadd_ps(s1, _mm512_cvtepi32_ps(_mm512_madd_epi16(p1, ones)), acc2);
  }
  acc = _mm512_add_ps(acc, acc2);
  for (; i + 2 <= nb; i += 2) {
    // sum (n - 8) y = sum n y - 8 sum y: the nibbles n are unsigned, so maddubs takes them as
    // they are (no sign juggling); both pair sums stay far from int16 saturation.
    const __m512i n = _mm512_inserti64x4(_mm512_castsi256_si512(q4_nibbles(b[i])), q4_nibbles(b[i + 1]), 1);
    const __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(load32(x[i].qs)), load32(x[i + 1].qs), 1);
    const __m512i pairs = _mm512_sub_epi16(_mm512_maddubs_epi16(n, qx), _mm512_maddubs_epi16(eight, qx));
    const __m512 dot = _mm512_cvtepi32_ps(_mm512_madd_epi16(pairs, ones));
    acc = _mm512_fmadd_ps(two_scales(half(b[i].d) * half(x[i].d), half(b[i + 1].d) * half(x[i + 1].d)), dot, acc);
  }
  return _mm512_reduce_add_ps(acc) + (i < nb ? portable_kernels().dot_q4_0(b + i, x + i, (nb - i) * 32) : 0.0f);
}

float dot_f16(const void* w, const float* x, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(w);
  __m512 acc = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16)
    acc = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(h + i))), _mm512_loadu_ps(x + i), acc);
  float sum = _mm512_reduce_add_ps(acc);
  for (; i < n; ++i) sum += half(h[i]) * x[i];
  return sum;
}

float dot_f32(const void* w, const float* x, int64_t n) {
  const float* f = static_cast<const float*>(w);
  __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(f + i), _mm512_loadu_ps(x + i), acc0);
    acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(f + i + 16), _mm512_loadu_ps(x + i + 16), acc1);
  }
  float sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += f[i] * x[i];
  return sum;
}

// Four weight rows per pass over the activation: the activation pair, its -8 sum and its scales
// are prepared once and used four times.
void dot4_q4_0(const uint8_t* w, size_t stride, const BlockQ8* x, int64_t n, float* out) {
  const int64_t nb = n / 32;
  const BlockQ4* rows[4] = {reinterpret_cast<const BlockQ4*>(w), reinterpret_cast<const BlockQ4*>(w + stride),
                            reinterpret_cast<const BlockQ4*>(w + 2 * stride), reinterpret_cast<const BlockQ4*>(w + 3 * stride)};
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  const __m512i eight = _mm512_set1_epi8(8), ones = _mm512_set1_epi16(1);
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(load32(x[i].qs)), load32(x[i + 1].qs), 1);
    const __m512i minus = _mm512_maddubs_epi16(eight, qx);
    const float dx0 = half(x[i].d), dx1 = half(x[i + 1].d);
    for (int r = 0; r < 4; ++r) {
      const BlockQ4* b = rows[r];
      const __m512i nib = _mm512_inserti64x4(_mm512_castsi256_si512(q4_nibbles(b[i])), q4_nibbles(b[i + 1]), 1);
      const __m512i pairs = _mm512_sub_epi16(_mm512_maddubs_epi16(nib, qx), minus);
      const __m512 dot = _mm512_cvtepi32_ps(_mm512_madd_epi16(pairs, ones));
      acc[r] = _mm512_fmadd_ps(two_scales(half(b[i].d) * dx0, half(b[i + 1].d) * dx1), dot, acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    float sum = _mm512_reduce_add_ps(acc[r]);
    for (int64_t j = i; j < nb; ++j) sum += dot_q4_0(rows[r] + j, x + j, 32);
    out[r] = sum;
  }
}

void dot4_q8_0(const uint8_t* w, size_t stride, const BlockQ8* x, int64_t n, float* out) {
  const int64_t nb = n / 32;
  const BlockQ8* rows[4] = {reinterpret_cast<const BlockQ8*>(w), reinterpret_cast<const BlockQ8*>(w + stride),
                            reinterpret_cast<const BlockQ8*>(w + 2 * stride), reinterpret_cast<const BlockQ8*>(w + 3 * stride)};
  __m512 acc[4] = {_mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps(), _mm512_setzero_ps()};
  int64_t i = 0;
  for (; i + 2 <= nb; i += 2) {
    const __m512i qx = _mm512_inserti64x4(_mm512_castsi256_si512(load32(x[i].qs)), load32(x[i + 1].qs), 1);
    const float dx0 = half(x[i].d), dx1 = half(x[i + 1].d);
    for (int r = 0; r < 4; ++r) {
      const BlockQ8* b = rows[r];
      const __m512i qw = _mm512_inserti64x4(_mm512_castsi256_si512(load32(b[i].qs)), load32(b[i + 1].qs), 1);
      acc[r] = _mm512_fmadd_ps(two_scales(half(b[i].d) * dx0, half(b[i + 1].d) * dx1), dot_i8_64(qw, qx), acc[r]);
    }
  }
  for (int r = 0; r < 4; ++r) {
    float sum = _mm512_reduce_add_ps(acc[r]);
    for (int64_t j = i; j < nb; ++j) sum += dot_q8_0(rows[r] + j, x + j, 32);
    out[r] = sum;
  }
}

}  // namespace

const Kernels* avx512_kernels() {
  static const Kernels k = {"avx512", dot_q8_0, dot_q4_0, dot_f16, dot_f32, avx2_kernels()->quantize_q8, avx2_kernels()->axpy_f32, avx2_kernels()->exp_sub_max, dot4_q4_0, dot4_q8_0,
                              nullptr, nullptr, nullptr, avx2_kernels()->attend_f32};
  return &k;
}

}  // namespace gemkit::runtime
