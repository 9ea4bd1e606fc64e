// AVX-512 VNNI matrix kernels for Q4_0 and Q8_0 weights: y[t, r] = W[r] . x[t] for a block of
// rows against a batch of tokens (a prompt) or one token (decoding), on activations prepared as
// ActPair (kernels.h). Compiled with AVX-512 F/BW/VL/DQ + VNNI; used only when the CPU has them.
//
// vpdpbusd multiplies unsigned bytes by signed bytes and adds groups of four into int32 lanes,
// one instruction where maddubs + madd took two (and without their int16 saturation). Weights
// are made unsigned: a Q4_0 nibble is 0..15 (the value + 8), a Q8_0 byte xor 0x80 is the value
// + 128. The offset times the activation block's sum is taken off by starting the accumulator
// at ActPair::neg_sum_x8 / neg_sum_x128 (minus 8 or 128 times the sum, in the block's first lane).
//
// A tile of RM weight rows x RN tokens keeps RM * RN float accumulators in registers; each
// pair of weight blocks is unpacked once per tile and used RN times, each activation pair
// loaded once per tile and used RM times.
#include <immintrin.h>

#include <algorithm>

#include "runtime/gemm_tiles.h"
#include "runtime/kernels.h"

namespace gemkit::runtime {

namespace {

// Two Q4_0 blocks as 64 unsigned bytes in element order: [lo0 | hi0 | lo1 | hi1], where lo are
// a block's elements 0-15 (low nibbles) and hi its 16-31 (high nibbles), ggml's layout.
inline __m512i q4_pair(const BlockQ4* b) {
  const __m256i packed = _mm256_inserti128_si256(
      _mm256_castsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b[0].qs))),
      _mm_loadu_si128(reinterpret_cast<const __m128i*>(b[1].qs)), 1);
  const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(packed), _mm256_srli_epi16(packed, 4), 1);
  const __m512i nibbles = _mm512_and_si512(both, _mm512_set1_epi8(0x0f));
  return _mm512_shuffle_i64x2(nibbles, nibbles, _MM_SHUFFLE(3, 1, 2, 0));
}

inline __m512i q8_pair(const BlockQ8* b) {
  const __m512i q = _mm512_inserti64x4(
      _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[0].qs))),
      _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b[1].qs)), 1);
  return _mm512_xor_si512(q, _mm512_set1_epi8(static_cast<char>(0x80)));
}

// The two blocks' fp16 scales as [d0 x 8 | d1 x 8].
inline __m512 pair_scales(uint16_t d0, uint16_t d1) {
  const __m256i h = _mm256_inserti128_si256(_mm256_castsi128_si256(_mm_set1_epi16(static_cast<short>(d0))),
                                            _mm_set1_epi16(static_cast<short>(d1)), 1);
  return _mm512_cvtph_ps(h);
}

template <QuantType kType>
struct Traits;
template <>
struct Traits<QuantType::Q4_0> {
  using Block = BlockQ4;
  static __m512i weights(const Block* b) { return q4_pair(b); }
  static __m512i start(const ActPair& x) { return _mm512_load_si512(x.neg_sum_x8); }
};
template <>
struct Traits<QuantType::Q8_0> {
  using Block = BlockQ8;
  static __m512i weights(const Block* b) { return q8_pair(b); }
  static __m512i start(const ActPair& x) { return _mm512_load_si512(x.neg_sum_x128); }
};

// The tile of gemm_tiles.h: RM rows x RN tokens over `pairs` block pairs.
template <QuantType kType>
struct Tiles {
  template <int RM, int RN>
  static void run(const uint8_t* w, size_t row_bytes, const ActPair* x, int64_t pairs, float* y, int64_t ldy) {
    using T = Traits<kType>;
    using Block = typename T::Block;
    __m512 acc[RM][RN];
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) acc[i][j] = _mm512_setzero_ps();
    for (int64_t p = 0; p < pairs; ++p) {
      __m512i xq[RN];
      for (int j = 0; j < RN; ++j) xq[j] = _mm512_load_si512(x[j * pairs + p].qs);
      for (int i = 0; i < RM; ++i) {
        const Block* b = reinterpret_cast<const Block*>(w + size_t(i) * row_bytes) + 2 * p;
        const __m512i wq = T::weights(b);
        const __m512 wd = pair_scales(b[0].d, b[1].d);
        for (int j = 0; j < RN; ++j) {
          const __m512i dot = _mm512_dpbusd_epi32(T::start(x[j * pairs + p]), wq, xq[j]);
          const __m512 scale = _mm512_mul_ps(wd, _mm512_load_ps(x[j * pairs + p].d));
          acc[i][j] = _mm512_fmadd_ps(scale, _mm512_cvtepi32_ps(dot), acc[i][j]);
        }
      }
    }
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) y[j * ldy + i] = _mm512_reduce_add_ps(acc[i][j]);
  }
};

}  // namespace

const Kernels* avx512_vnni_kernels() {
  static const Kernels k = [] {
    Kernels v = *avx512_kernels();
    v.name = "avx512_vnni";
    v.gemm_q4_0 = gemm_tiles<Tiles<QuantType::Q4_0>, 4, 4>;  // 4 x 4: sixteen accumulators
    v.gemm_q8_0 = gemm_tiles<Tiles<QuantType::Q8_0>, 4, 4>;
    return v;
  }();
  return &k;
}

}  // namespace gemkit::runtime
