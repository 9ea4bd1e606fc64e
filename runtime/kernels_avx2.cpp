// AVX2 + FMA + F16C kernels (compiled with those flags; called only when the CPU has them).
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/gemm_tiles.h"
#include "runtime/kernels.h"

namespace gemkit::runtime {

namespace {

inline float half(uint16_t h) { return _cvtsh_ss(h); }

// Sum of 32 int8 products as 8 int32 lanes -> float lanes (ggml's mul_sum_i8_pairs_float).
inline __m256 dot_i8_32(__m256i x, __m256i y) {
  const __m256i ax = _mm256_sign_epi8(x, x);
  const __m256i sy = _mm256_sign_epi8(y, x);
  const __m256i dot16 = _mm256_maddubs_epi16(ax, sy);
  const __m256i dot32 = _mm256_madd_epi16(dot16, _mm256_set1_epi16(1));
  return _mm256_cvtepi32_ps(dot32);
}

inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
  lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
  return _mm_cvtss_f32(lo);
}

float dot_q8_0(const void* w, const BlockQ8* x, int64_t n) {
  const BlockQ8* b = static_cast<const BlockQ8*>(w);
  __m256 acc = _mm256_setzero_ps();
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m256 d = _mm256_set1_ps(half(b[i].d) * half(x[i].d));
    const __m256i qw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[i].qs));
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    acc = _mm256_fmadd_ps(d, dot_i8_32(qw, qx), acc);
  }
  return hsum(acc);
}

float dot_q4_0(const void* w, const BlockQ8* x, int64_t n) {
  const BlockQ4* b = static_cast<const BlockQ4*>(w);
  __m256 acc = _mm256_setzero_ps();
  const __m256i low = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
  for (int64_t i = 0; i < n / 32; ++i) {
    const __m256 d = _mm256_set1_ps(half(b[i].d) * half(x[i].d));
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[i].qs));
    // Low nibbles are values 0..15, high nibbles 16..31 (ggml's layout).
    const __m256i both = _mm256_insertf128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
    const __m256i qw = _mm256_sub_epi8(_mm256_and_si256(both, low), eight);
    const __m256i qx = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(x[i].qs));
    acc = _mm256_fmadd_ps(d, dot_i8_32(qw, qx), acc);
  }
  return hsum(acc);
}

float dot_f16(const void* w, const float* x, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(w);
  __m256 acc = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256 wf = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(h + i)));
    acc = _mm256_fmadd_ps(wf, _mm256_loadu_ps(x + i), acc);
  }
  float sum = hsum(acc);
  for (; i < n; ++i) sum += half(h[i]) * x[i];
  return sum;
}

float dot_f32(const void* w, const float* x, int64_t n) {
  const float* f = static_cast<const float*>(w);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(f + i), _mm256_loadu_ps(x + i), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(f + i + 8), _mm256_loadu_ps(x + i + 8), acc1);
  }
  float sum = hsum(_mm256_add_ps(acc0, acc1));
  for (; i < n; ++i) sum += f[i] * x[i];
  return sum;
}

void quantize_q8(const float* x, BlockQ8* out, int64_t n) {
  const __m256 sign = _mm256_set1_ps(-0.0f);
  for (int64_t i = 0; i < n / 32; ++i) {
    const float* p = x + i * 32;
    __m256 v[4];
    __m256 amax = _mm256_setzero_ps();
    for (int k = 0; k < 4; ++k) {
      v[k] = _mm256_loadu_ps(p + 8 * k);
      amax = _mm256_max_ps(amax, _mm256_andnot_ps(sign, v[k]));
    }
    __m128 m = _mm_max_ps(_mm256_extractf128_ps(amax, 1), _mm256_castps256_ps128(amax));
    m = _mm_max_ps(m, _mm_movehl_ps(m, m));
    m = _mm_max_ss(m, _mm_movehdup_ps(m));
    const float max_scalar = _mm_cvtss_f32(m);
    out[i].d = _cvtss_sh(max_scalar / 127.f, 0);
    const __m256 id = _mm256_set1_ps(max_scalar != 0.0f ? 127.f / max_scalar : 0.0f);
    __m256i q[4];
    for (int k = 0; k < 4; ++k)
      q[k] = _mm256_cvtps_epi32(_mm256_round_ps(_mm256_mul_ps(v[k], id), _MM_ROUND_NEAREST | _MM_FROUND_NO_EXC));
    // Pack 32 int32 -> 32 int8 in order (packs interleave 128-bit lanes: fix with a permute).
    __m256i a = _mm256_packs_epi32(q[0], q[1]), c = _mm256_packs_epi32(q[2], q[3]);
    __m256i bytes = _mm256_packs_epi16(a, c);
    bytes = _mm256_permutevar8x32_epi32(bytes, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(out[i].qs), bytes);
  }
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  const __m256 va = _mm256_set1_ps(a);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
  for (; i < n; ++i) y[i] += a * x[i];
}

// exp of eight floats <= 0 (softmax arguments after the max is taken off): 2^k x exp(r) with
// k = round(x / ln 2), r = x - k ln 2 (|r| <= 0.347, ln 2 in two parts), exp(r) by its Taylor
// series to r^6 (truncation below 1.3e-7 relative: about one ulp); below -87.3 it returns
// 2^-126 x exp(r) instead of 0 or a denormal (softmax terms that small do not count).
inline __m256 exp_nonpositive(__m256 x) {
  x = _mm256_max_ps(x, _mm256_set1_ps(-87.3f));
  const __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(k, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(1.f / 720);
  for (const float c : {1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f}) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(c));
  const __m256i two_k = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
  return _mm256_mul_ps(p, _mm256_castsi256_ps(two_k));
}

// Decoding SmolLM2 after 128 tokens spent about a sixth of its time in attention, most of it in
// the scalar exp of every score.
double exp_sub_max(float* x, int64_t n) {
  __m256 mx8 = _mm256_set1_ps(x[0]);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) mx8 = _mm256_max_ps(mx8, _mm256_loadu_ps(x + i));
  __m128 m = _mm_max_ps(_mm256_extractf128_ps(mx8, 1), _mm256_castps256_ps128(mx8));
  m = _mm_max_ps(m, _mm_movehl_ps(m, m));
  float mx = _mm_cvtss_f32(_mm_max_ss(m, _mm_movehdup_ps(m)));
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  const __m256 sub = _mm256_set1_ps(mx);
  __m256 acc = _mm256_setzero_ps();
  for (i = 0; i + 8 <= n; i += 8) {
    const __m256 e = exp_nonpositive(_mm256_sub_ps(_mm256_loadu_ps(x + i), sub));
    _mm256_storeu_ps(x + i, e);
    acc = _mm256_add_ps(acc, e);
  }
  double sum = hsum(acc);
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  return sum;
}

// The matrix kernels (kernels.h gemm_q4_0 / gemm_q8_0): kernels_vnni.cpp's tiling of RM weight
// rows x RN tokens, with maddubs + madd in place of vpdpbusd and one 32-value block per step.
// Each weight block is unpacked once per tile and used RN times, each activation block loaded
// once per tile and used RM times; the dot products above unpack every block once per token.
// Q4_0 nibbles are used unsigned (value + 8): maddubs pairs them with the signed activations
// without int16 saturation (2 x 15 x 128 < 32768), and the +8 comes off by adding
// ActPair::neg_sum_x8 (minus 8 times the block's sum, in its first lane). Q8_0 weights are
// signed, so maddubs takes |w| and the activations with w's sign, as dot_q8_0 does.
template <QuantType kType>
struct Tile;
template <>
struct Tile<QuantType::Q4_0> {
  using Block = BlockQ4;
  static __m256i weights(const Block& b) {  // 32 nibbles in element order: low 0-15, high 16-31
    const __m128i packed = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
    const __m256i both = _mm256_inserti128_si256(_mm256_castsi128_si256(packed), _mm_srli_epi16(packed, 4), 1);
    return _mm256_and_si256(both, _mm256_set1_epi8(0x0f));
  }
  static __m256i dot(__m256i w, __m256i x, const int32_t* neg_sum_x8, const int32_t*) {
    const __m256i sum = _mm256_madd_epi16(_mm256_maddubs_epi16(w, x), _mm256_set1_epi16(1));
    return _mm256_add_epi32(sum, _mm256_load_si256(reinterpret_cast<const __m256i*>(neg_sum_x8)));
  }
};
template <>
struct Tile<QuantType::Q8_0> {
  using Block = BlockQ8;
  static __m256i weights(const Block& b) { return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs)); }
  static __m256i dot(__m256i w, __m256i x, const int32_t*, const int32_t*) {
    const __m256i products = _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
    return _mm256_madd_epi16(products, _mm256_set1_epi16(1));
  }
};

// The tile of gemm_tiles.h: RM rows x RN tokens over `pairs` block pairs.
template <QuantType kType>
struct Tiles {
  template <int RM, int RN>
  static void run(const uint8_t* w, size_t row_bytes, const ActPair* x, int64_t pairs, float* y, int64_t ldy) {
    using T = Tile<kType>;
    using Block = typename T::Block;
    __m256 acc[RM][RN];
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) acc[i][j] = _mm256_setzero_ps();
    for (int64_t block = 0; block < 2 * pairs; ++block) {
      const int64_t p = block / 2, h = block % 2;  // the pair, and which of its two blocks
      __m256i wq[RM];
      __m256 wd[RM];
      for (int i = 0; i < RM; ++i) {
        const Block& b = reinterpret_cast<const Block*>(w + size_t(i) * row_bytes)[block];
        // Decoding streams the rows once, one after another: fetching 2 KB ahead of the block in
        // use (3-6 rows of SmolLM2) made its Q8_0 decode 75 -> 93 tok/s and Q4_0 ~80 -> ~92 (one
        // thread, means of three alternated runs; 512 B ahead was no better than none).
        if (RM == 1 && RN == 1) _mm_prefetch(reinterpret_cast<const char*>(&b) + 2048, _MM_HINT_T0);
        wq[i] = T::weights(b);
        wd[i] = _mm256_set1_ps(half(b.d));
      }
      for (int j = 0; j < RN; ++j) {
        const ActPair& a = x[j * pairs + p];
        const __m256i xq = _mm256_load_si256(reinterpret_cast<const __m256i*>(a.qs + 32 * h));
        const __m256 dx = _mm256_load_ps(a.d + 8 * h);
        for (int i = 0; i < RM; ++i) {
          const __m256i dot = T::dot(wq[i], xq, a.neg_sum_x8 + 8 * h, a.neg_sum_x128 + 8 * h);
          acc[i][j] = _mm256_fmadd_ps(_mm256_mul_ps(wd[i], dx), _mm256_cvtepi32_ps(dot), acc[i][j]);
        }
      }
    }
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) y[j * ldy + i] = hsum(acc[i][j]);
  }
};

// Q4_0 weights interleaved eight rows at a time (kernels.h BlockQ4x8) x N tokens: row k of the
// group sits in 32-bit lane k, so a block's eight dot products come out in one register (no
// horizontal sums) and its eight scales convert in one instruction. For each four-byte group g
// the low nibbles (values 4g..4g+3) meet the activation bytes 4g..4g+3 broadcast to every lane,
// the high nibbles (16+4g..) the bytes 16+4g..; maddubs pairs the unsigned nibbles (value + 8)
// with the signed activations, and a block's eight int16 partial sums stay within
// 8 x 2 x 15 x 128 = 30720 (no saturation); ActPair::neg_sum_x8 takes the +8 off.
// Per 256 multiply-adds: ~45 instructions decoding (the row-by-row tile above: ~95).
struct TilesQ4x8 {
  template <int M, int N>
  static void run(const uint8_t* w, size_t, const ActPair* x, int64_t pairs, float* y, int64_t ldy) {
    static_assert(M == 1, "one group of eight rows per tile");
    const BlockQ4x8* blocks = reinterpret_cast<const BlockQ4x8*>(w);
    const __m256i low = _mm256_set1_epi8(0x0f), ones = _mm256_set1_epi16(1);
    __m256 acc[N];
    for (int j = 0; j < N; ++j) acc[j] = _mm256_setzero_ps();
    for (int64_t block = 0; block < 2 * pairs; ++block) {
      const BlockQ4x8& b = blocks[block];
      const int64_t p = block / 2, h = block % 2;
      // Decoding: 2 KB ahead, every cache line of the 144-byte block (one fetch per block, as the
      // row-by-row tile does, skips lines at this stride). SmolLM2 Q4_0, one thread, 16-token
      // prompt, three alternated runs: none 159-165 tok/s, one line 146-147, three lines 185-199
      // (1 KB and 4 KB ahead the same).
      if (N == 1)
        for (int line = 0; line < 3; ++line) _mm_prefetch(reinterpret_cast<const char*>(&b) + 2048 + 64 * line, _MM_HINT_T0);
      __m256i sum[N];
      for (int j = 0; j < N; ++j) sum[j] = _mm256_setzero_si256();
      for (int g = 0; g < 4; ++g) {
        const __m256i packed = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qs + 32 * g));
        const __m256i lo = _mm256_and_si256(packed, low), hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low);
        for (int j = 0; j < N; ++j) {
          const int8_t* xq = x[j * pairs + p].qs + 32 * h;
          int32_t xlo, xhi;
          std::memcpy(&xlo, xq + 4 * g, 4);
          std::memcpy(&xhi, xq + 16 + 4 * g, 4);
          const __m256i s = _mm256_add_epi16(_mm256_maddubs_epi16(lo, _mm256_set1_epi32(xlo)),
                                             _mm256_maddubs_epi16(hi, _mm256_set1_epi32(xhi)));
          sum[j] = _mm256_add_epi16(sum[j], s);
        }
      }
      const __m256 dw = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.d)));
      for (int j = 0; j < N; ++j) {
        const ActPair& a = x[j * pairs + p];
        const __m256i dot = _mm256_add_epi32(_mm256_madd_epi16(sum[j], ones), _mm256_set1_epi32(a.neg_sum_x8[8 * h]));
        acc[j] = _mm256_fmadd_ps(_mm256_mul_ps(dw, _mm256_set1_ps(a.d[8 * h])), _mm256_cvtepi32_ps(dot), acc[j]);
      }
    }
    for (int j = 0; j < N; ++j) _mm256_storeu_ps(y + j * ldy, acc[j]);
  }
};

// Attention for one query head, fused: the scores four cached positions at a time (four
// accumulators, one combined horizontal sum), the softmax numerators, then the weighted sum of
// the value rows with a 64-wide output held in eight registers. The loop it replaces made two
// kernel calls per position (a dot product with its own horizontal sum, an axpy that loads and
// stores the output): about 14% of a SmolLM2 token at 128-256 cached positions.
void attend_f32(const float* q, const float* K, const float* V, int64_t stride, int64_t n, int64_t D, float scale,
                float* scores, float* out) {
  int64_t s = 0;
  if (D % 8 == 0) {
    const __m128 vscale = _mm_set1_ps(scale);
    for (; s + 4 <= n; s += 4) {
      const float* k = K + s * stride;
      __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps(), a2 = _mm256_setzero_ps(), a3 = _mm256_setzero_ps();
      for (int64_t i = 0; i < D; i += 8) {
        const __m256 qv = _mm256_loadu_ps(q + i);
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(k + i), qv, a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(k + stride + i), qv, a1);
        a2 = _mm256_fmadd_ps(_mm256_loadu_ps(k + 2 * stride + i), qv, a2);
        a3 = _mm256_fmadd_ps(_mm256_loadu_ps(k + 3 * stride + i), qv, a3);
      }
      // hadd(hadd(a0, a1), hadd(a2, a3)) holds, per 128-bit half, the four rows' partial sums.
      const __m256 h = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
      const __m128 sums = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
      _mm_storeu_ps(scores + s, _mm_mul_ps(sums, vscale));
    }
  }
  for (; s < n; ++s) scores[s] = dot_f32(K + s * stride, q, D) * scale;
  const float inv = float(1.0 / exp_sub_max(scores, n));
  if (D == 64) {
    __m256 acc[8];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (s = 0; s < n; ++s) {
      const __m256 w = _mm256_set1_ps(scores[s]);
      const float* v = V + s * stride;
      for (int c = 0; c < 8; ++c) acc[c] = _mm256_fmadd_ps(w, _mm256_loadu_ps(v + 8 * c), acc[c]);
    }
    const __m256 vinv = _mm256_set1_ps(inv);
    for (int c = 0; c < 8; ++c) _mm256_storeu_ps(out + 8 * c, _mm256_mul_ps(acc[c], vinv));
    return;
  }
  std::fill(out, out + D, 0.f);
  for (s = 0; s < n; ++s) axpy_f32(scores[s] * inv, V + s * stride, out, D);
}

void gemm_q4_0x8(const BlockQ4x8* w, int64_t groups, const ActPair* x, int64_t tokens, int64_t pairs, float* y,
                 int64_t ldy) {
  gemm_tiles<TilesQ4x8, 1, 4, 8>(reinterpret_cast<const uint8_t*>(w), size_t(2 * pairs) * sizeof(BlockQ4x8), groups, x,
                                 tokens, pairs, y, ldy);
}

// 4 x 2 tiles: eight accumulators, four unpacked weight blocks, one activation block and two
// constants fill the sixteen registers (SmolLM2 prompts: 4 x 2 and 2 x 4 alike, 4 x 3 and 2 x 2
// slower).
const Kernels kAvx2 = {"avx2",   dot_q8_0, dot_q4_0, dot_f16, dot_f32, quantize_q8, axpy_f32, exp_sub_max, nullptr, nullptr,
                       gemm_tiles<Tiles<QuantType::Q4_0>, 4, 2>, gemm_tiles<Tiles<QuantType::Q8_0>, 4, 2>, gemm_q4_0x8,
                       attend_f32};

}  // namespace

const Kernels* avx2_kernels() { return &kAvx2; }

}  // namespace gemkit::runtime
