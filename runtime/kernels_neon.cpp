// AArch64 NEON kernels (kernels.h). Compiled twice: as it is, for every ARMv8-A CPU (int8
// products by widening multiplies, smull + sadalp), and through kernels_neon_dotprod.cpp with
// GEMKIT_NEON_DOTPROD and -march=armv8.2-a+dotprod, where sdot multiplies and sums four int8
// pairs per lane in one instruction (Cortex-A55/A76 and later: the Pixel 6, the iPhone 13's
// cores; the Raspberry Pi 4's Cortex-A72 has no sdot). kernels.cpp picks the set at run time.
//
// Q4_0 and Q8_0 weights are unpacked to signed int8 (NEON multiplies signed by signed, so the
// unsigned offsets the x86 kernels need are not used), each 32-value block's int32 sum is exact,
// and the float accumulation is one fused multiply-add per block into four lanes: the same
// arithmetic for a token decoded alone and for a token in a prompt tile.
#include <arm_neon.h>

#include <algorithm>
#include <cmath>
#include <cstring>

#include "runtime/gemm_tiles.h"
#include "runtime/kernels.h"

namespace gemkit::runtime {

namespace {

inline float half(uint16_t h) {
  __fp16 f;
  std::memcpy(&f, &h, sizeof f);
  return float(f);
}

// acc + the sums of four int8 products per int32 lane (16 products in all).
inline int32x4_t dot16(int32x4_t acc, int8x16_t a, int8x16_t b) {
#ifdef GEMKIT_NEON_DOTPROD
  return vdotq_s32(acc, a, b);
#else
  // int8 x int8 fits int16 (at most 128 x 128 = 16384); pairs of int16 add into int32.
  return vpadalq_s16(vpadalq_s16(acc, vmull_s8(vget_low_s8(a), vget_low_s8(b))), vmull_high_s8(a, b));
#endif
}

// A weight block's 32 values as two int8 vectors in element order.
inline int8x16x2_t weights(const BlockQ8& b) { return {{vld1q_s8(b.qs), vld1q_s8(b.qs + 16)}}; }
inline int8x16x2_t weights(const BlockQ4& b) {  // low nibbles are values 0-15, high 16-31 (ggml)
  const uint8x16_t packed = vld1q_u8(b.qs);
  const int8x16_t eight = vdupq_n_s8(8);
  return {{vsubq_s8(vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0f))), eight),
           vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(packed, 4)), eight)}};
}

inline int32x4_t block_dot(const int8x16x2_t& w, int8x16_t x0, int8x16_t x1) {
  return dot16(dot16(vdupq_n_s32(0), w.val[0], x0), w.val[1], x1);
}

template <class Block>
float dot_blocks(const void* w, const BlockQ8* x, int64_t n) {
  const Block* b = static_cast<const Block*>(w);
  float32x4_t acc = vdupq_n_f32(0);
  for (int64_t i = 0; i < n / 32; ++i) {
    const int32x4_t s = block_dot(weights(b[i]), vld1q_s8(x[i].qs), vld1q_s8(x[i].qs + 16));
    acc = vfmaq_n_f32(acc, vcvtq_f32_s32(s), half(b[i].d) * half(x[i].d));
  }
  return vaddvq_f32(acc);
}

float dot_q8_0(const void* w, const BlockQ8* x, int64_t n) { return dot_blocks<BlockQ8>(w, x, n); }
float dot_q4_0(const void* w, const BlockQ8* x, int64_t n) { return dot_blocks<BlockQ4>(w, x, n); }

float dot_f16(const void* w, const float* x, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(w);
  float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const float16x8_t wh = vreinterpretq_f16_u16(vld1q_u16(h + i));
    acc0 = vfmaq_f32(acc0, vcvt_f32_f16(vget_low_f16(wh)), vld1q_f32(x + i));
    acc1 = vfmaq_f32(acc1, vcvt_high_f32_f16(wh), vld1q_f32(x + i + 4));
  }
  float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
  for (; i < n; ++i) sum += half(h[i]) * x[i];
  return sum;
}

float dot_f32(const void* w, const float* x, int64_t n) {
  const float* f = static_cast<const float*>(w);
  float32x4_t acc0 = vdupq_n_f32(0), acc1 = vdupq_n_f32(0);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    acc0 = vfmaq_f32(acc0, vld1q_f32(f + i), vld1q_f32(x + i));
    acc1 = vfmaq_f32(acc1, vld1q_f32(f + i + 4), vld1q_f32(x + i + 4));
  }
  float sum = vaddvq_f32(vaddq_f32(acc0, acc1));
  for (; i < n; ++i) sum += f[i] * x[i];
  return sum;
}

// Bit for bit the portable quantizer: the same amax, scale and reciprocal, fcvtns rounds to
// nearest even as nearbyint does in the default rounding mode, the values fit int8 unsaturated.
void quantize_q8(const float* x, BlockQ8* out, int64_t n) {
  for (int64_t i = 0; i < n / 32; ++i) {
    const float* p = x + i * 32;
    float32x4_t v[8];
    float32x4_t amax = vdupq_n_f32(0);
    for (int k = 0; k < 8; ++k) {
      v[k] = vld1q_f32(p + 4 * k);
      amax = vmaxq_f32(amax, vabsq_f32(v[k]));
    }
    const float m = vmaxvq_f32(amax);
    out[i].d = fp32_to_fp16(m / 127.f);
    const float id = m != 0.f ? 127.f / m : 0.f;
    int16x8_t q16[4];
    for (int k = 0; k < 4; ++k)
      q16[k] = vcombine_s16(vmovn_s32(vcvtnq_s32_f32(vmulq_n_f32(v[2 * k], id))),
                            vmovn_s32(vcvtnq_s32_f32(vmulq_n_f32(v[2 * k + 1], id))));
    vst1q_s8(out[i].qs, vcombine_s8(vmovn_s16(q16[0]), vmovn_s16(q16[1])));
    vst1q_s8(out[i].qs + 16, vcombine_s8(vmovn_s16(q16[2]), vmovn_s16(q16[3])));
  }
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) vst1q_f32(y + i, vfmaq_n_f32(vld1q_f32(y + i), vld1q_f32(x + i), a));
  for (; i < n; ++i) y[i] += a * x[i];
}

// exp of four floats <= 0, as kernels_avx2.cpp computes it (2^k x Taylor series of exp(r) to r^6,
// |r| <= 0.347, ln 2 in two parts; below -87.3 clamped): the softmax numerator of attention.
inline float32x4_t exp_nonpositive(float32x4_t x) {
  x = vmaxq_f32(x, vdupq_n_f32(-87.3f));
  const float32x4_t k = vrndnq_f32(vmulq_n_f32(x, 1.44269504f));
  float32x4_t r = vfmsq_f32(x, k, vdupq_n_f32(0.693359375f));
  r = vfmsq_f32(r, k, vdupq_n_f32(-2.12194440e-4f));
  float32x4_t p = vdupq_n_f32(1.f / 720);
  for (const float c : {1.f / 120, 1.f / 24, 1.f / 6, 0.5f, 1.f, 1.f}) p = vfmaq_f32(vdupq_n_f32(c), p, r);
  const int32x4_t two_k = vshlq_n_s32(vaddq_s32(vcvtq_s32_f32(k), vdupq_n_s32(127)), 23);
  return vmulq_f32(p, vreinterpretq_f32_s32(two_k));
}

double exp_sub_max(float* x, int64_t n) {
  float mx = x[0];
  int64_t i = 0;
  if (n >= 4) {
    float32x4_t m4 = vld1q_f32(x);
    for (i = 4; i + 4 <= n; i += 4) m4 = vmaxq_f32(m4, vld1q_f32(x + i));
    mx = vmaxvq_f32(m4);
  }
  for (; i < n; ++i) mx = std::max(mx, x[i]);
  float32x4_t acc = vdupq_n_f32(0);
  for (i = 0; i + 4 <= n; i += 4) {
    const float32x4_t e = exp_nonpositive(vsubq_f32(vld1q_f32(x + i), vdupq_n_f32(mx)));
    vst1q_f32(x + i, e);
    acc = vaddq_f32(acc, e);
  }
  double sum = vaddvq_f32(acc);
  for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  return sum;
}

// The matrix kernels' view of a weight type: its values as int8 and the int32 lanes the block
// sum starts from. Q4_0 nibbles stay unsigned (0..15) and the sum starts from the activation
// pair's -8 x (sum of the block's values) in lane 0 (ActPair::neg_sum_x8): two subtractions per
// block fewer than signed nibbles, the same integer result.
template <class Block>
struct Tile;
template <>
struct Tile<BlockQ4> {
  static int8x16x2_t weights(const BlockQ4& b) {
    const uint8x16_t packed = vld1q_u8(b.qs);
    return {{vreinterpretq_s8_u8(vandq_u8(packed, vdupq_n_u8(0x0f))), vreinterpretq_s8_u8(vshrq_n_u8(packed, 4))}};
  }
  static int32x4_t start(const ActPair& a, int h) { return vld1q_s32(a.neg_sum_x8 + 8 * h); }
};
template <>
struct Tile<BlockQ8> {
  static int8x16x2_t weights(const BlockQ8& b) { return {{vld1q_s8(b.qs), vld1q_s8(b.qs + 16)}}; }
  static int32x4_t start(const ActPair&, int) { return vdupq_n_s32(0); }
};

// The matrix kernels' tile (kernels.h gemm_q4_0 / gemm_q8_0, walked by gemm_tiles.h): RM weight
// rows x RN tokens, each weight block unpacked once per tile and used RN times, each activation
// block loaded once and used RM times (NEON's 32 registers hold a 4 x 4 tile: 16 accumulators,
// 8 unpacked weight vectors, 2 activation vectors). Decoding is the 1 x 1 tile row after row
// with the same per-block arithmetic, so it equals a prompt's result bit for bit.
template <class Block>
struct Tiles {
  template <int RM, int RN>
  static void run(const uint8_t* w, size_t row_bytes, const ActPair* x, int64_t pairs, float* y, int64_t ldy) {
    float32x4_t acc[RM][RN];
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) acc[i][j] = vdupq_n_f32(0);
    // Pair by pair, its two blocks unrolled (h constant: no index arithmetic per block).
    for (int64_t p = 0; p < pairs; ++p)
    for (int h = 0; h < 2; ++h) {
      const int64_t block = 2 * p + h;
      int8x16x2_t wq[RM];
      float wd[RM];
      for (int i = 0; i < RM; ++i) {
        const Block& b = reinterpret_cast<const Block*>(w + size_t(i) * row_bytes)[block];
        // One sequential row stream while decoding: fetch ahead of it (kernels_avx2.cpp measured 2 KB).
        if (RM == 1 && RN == 1) __builtin_prefetch(reinterpret_cast<const char*>(&b) + 2048);
        wq[i] = Tile<Block>::weights(b);
        wd[i] = half(b.d);
      }
      for (int j = 0; j < RN; ++j) {
        const ActPair& a = x[j * pairs + p];
        const int8x16_t x0 = vld1q_s8(a.qs + 32 * h), x1 = vld1q_s8(a.qs + 32 * h + 16);
        const float dx = a.d[8 * h];
        const int32x4_t start = Tile<Block>::start(a, h);
        for (int i = 0; i < RM; ++i) {
          const int32x4_t sum = dot16(dot16(start, wq[i].val[0], x0), wq[i].val[1], x1);
          acc[i][j] = vfmaq_n_f32(acc[i][j], vcvtq_f32_s32(sum), wd[i] * dx);
        }
      }
    }
    for (int i = 0; i < RM; ++i)
      for (int j = 0; j < RN; ++j) y[j * ldy + i] = vaddvq_f32(acc[i][j]);
  }
};

// Q4_0 weights interleaved eight rows at a time (kernels.h BlockQ4x8) x N tokens. A 32-byte
// group g of a block is rows 0-3 then rows 4-7, four bytes each: one q register holds four rows'
// bytes in four int32 lanes, and each lane meets the same four activation bytes (4g..4g+3 for the
// low nibbles, 16+4g.. for the high): sdot by element (one instruction per 16 products), or
// without the dot product the four bytes broadcast and multiplied in widening int16 sums. The eight rows'
// sums come out in two registers: no horizontal sums, two fp16 -> fp32 conversions per block for
// eight scales. The same arithmetic for one token and for N, so decoding equals a prompt.
// start + per int32 lane k: row k's 32 values (lane k of lo[g] and hi[g], g = 0..3) times the
// block's activations (x0: values 0-15, x1: 16-31).
inline int32x4_t rows4_block_dot(int32x4_t start, const int8x16_t* lo, const int8x16_t* hi, int8x16_t x0, int8x16_t x1) {
#ifdef GEMKIT_NEON_DOTPROD
  start = vdotq_laneq_s32(vdotq_laneq_s32(start, lo[0], x0, 0), hi[0], x1, 0);
  start = vdotq_laneq_s32(vdotq_laneq_s32(start, lo[1], x0, 1), hi[1], x1, 1);
  start = vdotq_laneq_s32(vdotq_laneq_s32(start, lo[2], x0, 2), hi[2], x1, 2);
  return vdotq_laneq_s32(vdotq_laneq_s32(start, lo[3], x0, 3), hi[3], x1, 3);
#else
  // The four activation bytes of each group broadcast; nibble (0..15) x int8 products summed in
  // int16 (eight per lane: at most 8 x 15 x 128 = 15360), then pairwise into the rows' lanes.
  const int32x4_t a0 = vreinterpretq_s32_s8(x0), a1 = vreinterpretq_s32_s8(x1);
  const int8x16_t b0[4] = {vreinterpretq_s8_s32(vdupq_laneq_s32(a0, 0)), vreinterpretq_s8_s32(vdupq_laneq_s32(a0, 1)),
                           vreinterpretq_s8_s32(vdupq_laneq_s32(a0, 2)), vreinterpretq_s8_s32(vdupq_laneq_s32(a0, 3))};
  const int8x16_t b1[4] = {vreinterpretq_s8_s32(vdupq_laneq_s32(a1, 0)), vreinterpretq_s8_s32(vdupq_laneq_s32(a1, 1)),
                           vreinterpretq_s8_s32(vdupq_laneq_s32(a1, 2)), vreinterpretq_s8_s32(vdupq_laneq_s32(a1, 3))};
  int16x8_t l = vmull_s8(vget_low_s8(lo[0]), vget_low_s8(b0[0])), u = vmull_high_s8(lo[0], b0[0]);
  l = vmlal_s8(l, vget_low_s8(hi[0]), vget_low_s8(b1[0]));
  u = vmlal_high_s8(u, hi[0], b1[0]);
  for (int g = 1; g < 4; ++g) {
    l = vmlal_s8(vmlal_s8(l, vget_low_s8(lo[g]), vget_low_s8(b0[g])), vget_low_s8(hi[g]), vget_low_s8(b1[g]));
    u = vmlal_high_s8(vmlal_high_s8(u, lo[g], b0[g]), hi[g], b1[g]);
  }
  return vaddq_s32(start, vpaddq_s32(vpaddlq_s16(l), vpaddlq_s16(u)));
#endif
}

struct TilesQ4x8 {
  template <int M, int N>
  static void run(const uint8_t* w, size_t, const ActPair* x, int64_t pairs, float* y, int64_t ldy) {
    static_assert(M == 1, "one group of eight rows per tile");
    const BlockQ4x8* blocks = reinterpret_cast<const BlockQ4x8*>(w);
    const uint8x16_t low = vdupq_n_u8(0x0f);
    float32x4_t acc[N][2];
    for (int j = 0; j < N; ++j) acc[j][0] = acc[j][1] = vdupq_n_f32(0);
    for (int64_t p = 0; p < pairs; ++p)
      for (int h = 0; h < 2; ++h) {
        const BlockQ4x8& b = blocks[2 * p + h];
        if (N == 1) __builtin_prefetch(reinterpret_cast<const char*>(&b) + 2048);
        int8x16_t lo[2][4], hi[2][4];  // rows 0-3 / 4-7, group
        for (int r = 0; r < 2; ++r)
          for (int g = 0; g < 4; ++g) {
            const uint8x16_t packed = vld1q_u8(b.qs + 32 * g + 16 * r);
            lo[r][g] = vreinterpretq_s8_u8(vandq_u8(packed, low));
            hi[r][g] = vreinterpretq_s8_u8(vshrq_n_u8(packed, 4));
          }
        const float16x8_t d16 = vreinterpretq_f16_u16(vld1q_u16(b.d));
        const float32x4_t dw[2] = {vcvt_f32_f16(vget_low_f16(d16)), vcvt_high_f32_f16(d16)};
        for (int j = 0; j < N; ++j) {
          const ActPair& a = x[j * pairs + p];
          const int8x16_t x0 = vld1q_s8(a.qs + 32 * h), x1 = vld1q_s8(a.qs + 32 * h + 16);
          const float dx = a.d[8 * h];
          for (int r = 0; r < 2; ++r) {
            const int32x4_t sum = rows4_block_dot(vdupq_n_s32(a.neg_sum_x8[8 * h]), lo[r], hi[r], x0, x1);
            acc[j][r] = vfmaq_f32(acc[j][r], vcvtq_f32_s32(sum), vmulq_n_f32(dw[r], dx));
          }
        }
      }
    for (int j = 0; j < N; ++j) {
      vst1q_f32(y + j * ldy, acc[j][0]);
      vst1q_f32(y + j * ldy + 4, acc[j][1]);
    }
  }
};

void gemm_q4_0x8(const BlockQ4x8* w, int64_t groups, const ActPair* x, int64_t tokens, int64_t pairs, float* y,
                 int64_t ldy) {
  gemm_tiles<TilesQ4x8, 1, 4, 8>(reinterpret_cast<const uint8_t*>(w), size_t(2 * pairs) * sizeof(BlockQ4x8), groups, x,
                                 tokens, pairs, y, ldy);
}

#ifdef GEMKIT_NEON_DOTPROD
constexpr const char* kName = "neon_dotprod";
#else
constexpr const char* kName = "neon";
#endif
const Kernels kNeon = {kName,   dot_q8_0, dot_q4_0, dot_f16, dot_f32, quantize_q8, axpy_f32, exp_sub_max, nullptr, nullptr,
                       gemm_tiles<Tiles<BlockQ4>, 4, 4>, gemm_tiles<Tiles<BlockQ8>, 4, 4>, gemm_q4_0x8,
                       attend_loop<dot_f32, exp_sub_max, axpy_f32>};

}  // namespace

#ifdef GEMKIT_NEON_DOTPROD
const Kernels* neon_dotprod_kernels() { return &kNeon; }
#else
const Kernels* neon_kernels() { return &kNeon; }
#endif

}  // namespace gemkit::runtime
