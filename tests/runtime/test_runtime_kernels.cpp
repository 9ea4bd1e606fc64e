// The edge runtime's kernel sets (runtime/kernels.h) against the portable reference, without
// LibTorch: every set this CPU runs (x86-64: AVX2, AVX-512, AVX-512 VNNI; AArch64: NEON and
// NEON with the dot product, tested under qemu with both emulated CPUs). Integer arithmetic
// (activation quantization, the int8 block sums) must match bit for bit; float sums in another
// order within the bounds stated at each check.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "formats/block_quant.h"
#include "runtime/kernels.h"
#include "runtime/repack.h"

using namespace gemkit;

namespace {

// Every set but the portable one.
std::vector<const runtime::Kernels*> simd_sets() {
  std::vector<const runtime::Kernels*> sets = runtime::available_kernels();
  EXPECT_STREQ(sets.front()->name, "portable");
  sets.erase(sets.begin());
  return sets;
}

}  // namespace

// The run-time choice is the widest set the CPU runs, and a set the architecture has is there.
TEST(RuntimeKernels, ChoiceIsTheBestTheCpuRuns) {
  const std::vector<const runtime::Kernels*> sets = runtime::available_kernels();
  const char* forced = std::getenv("GEMKIT_RUNTIME_KERNELS");
  if (!forced) {
    EXPECT_STREQ(runtime::kernels().name, sets.back()->name);
  }
#if defined(__aarch64__)
  ASSERT_GE(sets.size(), 2u);
  EXPECT_STREQ(sets[1]->name, "neon");
  EXPECT_EQ(sets.size(), runtime::cpu_has_neon_dotprod() ? 3u : 2u);
  std::printf("CPU dot product: %s; sets:", runtime::cpu_has_neon_dotprod() ? "yes" : "no");
#else
  EXPECT_EQ(sets.size() > 1, runtime::cpu_has_avx2());
  std::printf("sets:");
#endif
  for (const runtime::Kernels* k : sets) std::printf(" %s", k->name);
  std::printf("\n");
}

TEST(RuntimeKernels, SimdKernelsEqualPortable) {
  for (const runtime::Kernels* simd : simd_sets()) {
    SCOPED_TRACE(simd->name);
    const runtime::Kernels& p = runtime::portable_kernels();
    std::mt19937 rng(3);
    std::normal_distribution<float> nd;
    for (int trial = 0; trial < 50; ++trial) {
      const int64_t n = 32 * (1 + trial % 24);
      std::vector<float> x(static_cast<size_t>(n)), w(static_cast<size_t>(n));
      for (auto& v : x) v = nd(rng) * (trial % 5 == 0 ? 1e-3f : 3.f);
      for (auto& v : w) v = nd(rng);
      x[0] = 2.5f * (float(n) / 64);  // a tie for the activation rounding
      std::vector<runtime::BlockQ8> xa(static_cast<size_t>(n / 32)), xp(static_cast<size_t>(n / 32));
      simd->quantize_q8(x.data(), xa.data(), n);
      p.quantize_q8(x.data(), xp.data(), n);
      ASSERT_EQ(std::memcmp(xa.data(), xp.data(), xa.size() * sizeof(runtime::BlockQ8)), 0) << "trial " << trial;
      std::vector<uint8_t> q8(quant_row_bytes(QuantType::Q8_0, n)), q4(quant_row_bytes(QuantType::Q4_0, n)),
          f16(quant_row_bytes(QuantType::F16, n));
      quantize_row(QuantType::Q8_0, w.data(), n, q8.data());
      quantize_row(QuantType::Q4_0, w.data(), n, q4.data());
      quantize_row(QuantType::F16, w.data(), n, f16.data());
      const auto close = [](float a, float b) { return std::fabs(a - b) <= 1e-4f * (1 + std::fabs(b)); };
      EXPECT_TRUE(close(simd->dot_q8_0(q8.data(), xp.data(), n), p.dot_q8_0(q8.data(), xp.data(), n)));
      EXPECT_TRUE(close(simd->dot_q4_0(q4.data(), xp.data(), n), p.dot_q4_0(q4.data(), xp.data(), n)));
      EXPECT_TRUE(close(simd->dot_f16(f16.data(), x.data(), n), p.dot_f16(f16.data(), x.data(), n)));
      EXPECT_TRUE(close(simd->dot_f32(w.data(), x.data(), n), p.dot_f32(w.data(), x.data(), n)));
      std::vector<float> y(x.size(), 0.5f), yp(x.size(), 0.5f);
      simd->axpy_f32(0.75f, x.data(), y.data(), n);
      p.axpy_f32(0.75f, x.data(), yp.data(), n);
      for (size_t i = 0; i < y.size(); ++i) ASSERT_TRUE(close(y[i], yp[i])) << i;
      if (simd->dot4_q4_0) {
        // Four rows at once equal four single rows (rows = the same row shifted by one block).
        std::vector<uint8_t> q4x4(q4.size() * 4), q8x4(q8.size() * 4);
        for (int r = 0; r < 4; ++r) {
          std::vector<float> wr(w);
          std::rotate(wr.begin(), wr.begin() + 32 * r % n, wr.end());
          quantize_row(QuantType::Q4_0, wr.data(), n, q4x4.data() + r * q4.size());
          quantize_row(QuantType::Q8_0, wr.data(), n, q8x4.data() + r * q8.size());
        }
        float four[4];
        simd->dot4_q4_0(q4x4.data(), q4.size(), xp.data(), n, four);
        for (int r = 0; r < 4; ++r) EXPECT_TRUE(close(four[r], p.dot_q4_0(q4x4.data() + r * q4.size(), xp.data(), n))) << r;
        simd->dot4_q8_0(q8x4.data(), q8.size(), xp.data(), n, four);
        for (int r = 0; r < 4; ++r) EXPECT_TRUE(close(four[r], p.dot_q8_0(q8x4.data() + r * q8.size(), xp.data(), n))) << r;
      }
    }
  }
}

// Attention's softmax numerator (Kernels::exp_sub_max) of every set against the portable std::exp:
// scores spread over the range attention produces and beyond (down to -200 below the max, where
// the terms underflow), lengths 1 to 300 (vector body and scalar tail). Bound: 4e-7 relative
// per term and for the sum (measured: AVX2 1.7e-7 per term, 8.4e-8 for the sum; NEON 1.7e-7 and
// 1.4e-7 under qemu).
TEST(RuntimeKernels, SoftmaxExpEqualsPortable) {
  const runtime::Kernels& p = runtime::portable_kernels();
  for (const runtime::Kernels* simd : simd_sets()) {
    SCOPED_TRACE(simd->name);
    std::mt19937 rng(11);
    std::normal_distribution<float> nd;
    double worst_term = 0, worst_sum = 0;
    for (const int64_t n : {1, 7, 8, 9, 64, 161, 300}) {
      for (const float spread : {0.5f, 4.f, 40.f}) {
        std::vector<float> x(static_cast<size_t>(n));
        for (auto& v : x) v = nd(rng) * spread;
        std::vector<float> got(x), want(x);
        const double sum_got = simd->exp_sub_max(got.data(), n), sum_want = p.exp_sub_max(want.data(), n);
        for (size_t i = 0; i < x.size(); ++i) {
          // Terms below 1e-30 of the largest (1.0) do not reach a float sum: absolute bound there.
          const double err = std::fabs(double(got[i]) - want[i]) / std::max(double(want[i]), 1e-30);
          worst_term = std::max(worst_term, want[i] > 1e-30f ? err : 0.0);
          ASSERT_LE(std::fabs(double(got[i]) - want[i]), 4e-7 * std::max(double(want[i]), 1e-30)) << "n " << n << " i " << i;
        }
        worst_sum = std::max(worst_sum, std::fabs(sum_got - sum_want) / sum_want);
        ASSERT_LE(std::fabs(sum_got - sum_want), 4e-7 * sum_want) << "n " << n;
      }
    }
    std::printf("%s softmax exp vs std::exp: largest relative difference %.2e per term, %.2e for the sum\n", simd->name,
                worst_term, worst_sum);
  }
}

// Attention of one query head (Kernels::attend_f32: fused on AVX2, the loop of the set's own
// kernels elsewhere) against the portable set's loop: scores, softmax, weighted value sum.
TEST(RuntimeKernels, AttentionEqualsPortableLoop) {
  const runtime::Kernels& p = runtime::portable_kernels();
  for (const runtime::Kernels* simd : simd_sets()) {
    SCOPED_TRACE(simd->name);
    std::mt19937 rng(5);
    std::normal_distribution<float> nd;
    double worst = 0;  // measured: avx2 5.8e-7 (bound 2e-6)
    for (const int64_t D : {64, 32, 20, 128}) {
      for (const int64_t n : {1, 3, 4, 5, 17, 128, 301}) {
        const int64_t stride = 3 * D + 8;  // rows of one kv head inside [positions][kv_heads * D]
        std::vector<float> q(static_cast<size_t>(D)), K(static_cast<size_t>(n * stride)), V(static_cast<size_t>(n * stride));
        for (auto& v : q) v = nd(rng);
        for (auto& v : K) v = nd(rng);
        for (auto& v : V) v = nd(rng);
        const float scale = 1.0f / std::sqrt(float(D));
        std::vector<float> want(static_cast<size_t>(D)), got(static_cast<size_t>(D)), scratch(static_cast<size_t>(n));
        p.attend_f32(q.data(), K.data(), V.data(), stride, n, D, scale, scratch.data(), want.data());
        simd->attend_f32(q.data(), K.data(), V.data(), stride, n, D, scale, scratch.data(), got.data());
        double largest = 0;
        for (float v : want) largest = std::max(largest, double(std::fabs(v)));
        for (int64_t i = 0; i < D; ++i) {
          const double err = std::fabs(double(got[size_t(i)]) - want[size_t(i)]) / largest;
          worst = std::max(worst, err);
          ASSERT_LE(err, 2e-6) << "D " << D << " n " << n << " i " << i;
        }
      }
    }
    std::printf("%s attention vs the portable loop: largest difference %.2e of the output's largest value\n",
                simd->name, worst);
  }
}

// The integer arithmetic bit for bit: with every scale 1.0 each block's int32 sum reaches the
// result unrounded (all partial sums are integers below 2^24, exact in float in any order), so
// every set's Q8_0 / Q4_0 dot products and matrix kernels equal the portable ones exactly, for
// all weight and activation values (-127..127, -8..7 for Q4_0).
TEST(RuntimeKernels, IntegerSumsEqualPortableBitForBit) {
  const runtime::Kernels& p = runtime::portable_kernels();
  std::mt19937 rng(11);
  std::uniform_int_distribution<int> q8(-127, 127), q4(0, 15);
  constexpr uint16_t kOne = 0x3c00;  // 1.0 in fp16
  for (const runtime::Kernels* simd : simd_sets()) {
    SCOPED_TRACE(simd->name);
    for (const int64_t n : {64, 256, 768}) {
      const int64_t blocks = n / 32;
      std::vector<runtime::BlockQ8> x(static_cast<size_t>(blocks)), w8(static_cast<size_t>(blocks));
      std::vector<runtime::BlockQ4> w4(static_cast<size_t>(blocks));
      for (int64_t b = 0; b < blocks; ++b) {
        x[b].d = w8[b].d = w4[b].d = kOne;
        for (int j = 0; j < 32; ++j) x[b].qs[j] = int8_t(q8(rng)), w8[b].qs[j] = int8_t(q8(rng));
        for (int j = 0; j < 16; ++j) w4[b].qs[j] = uint8_t(q4(rng) | q4(rng) << 4);
      }
      x[0].qs[0] = w8[0].qs[0] = -127;  // the extremes
      EXPECT_EQ(simd->dot_q8_0(w8.data(), x.data(), n), p.dot_q8_0(w8.data(), x.data(), n)) << n;
      EXPECT_EQ(simd->dot_q4_0(w4.data(), x.data(), n), p.dot_q4_0(w4.data(), x.data(), n)) << n;
      if (!simd->gemm_q4_0) continue;
      std::vector<runtime::ActPair> xp(size_t(n / 64));
      runtime::make_act_pairs(x.data(), blocks, xp.data());
      float y = NAN;
      simd->gemm_q8_0(reinterpret_cast<const uint8_t*>(w8.data()), sizeof(runtime::BlockQ8) * size_t(blocks), 1, xp.data(), 1,
                      n / 64, &y, 1);
      EXPECT_EQ(y, p.dot_q8_0(w8.data(), x.data(), n)) << n;
      simd->gemm_q4_0(reinterpret_cast<const uint8_t*>(w4.data()), sizeof(runtime::BlockQ4) * size_t(blocks), 1, xp.data(), 1,
                      n / 64, &y, 1);
      EXPECT_EQ(y, p.dot_q4_0(w4.data(), x.data(), n)) << n;
    }
  }
}

// The matrix kernels (a tile of weight rows x tokens) of every set that has them against the
// portable dot product of every pair: row and token counts around the tiles (ragged edges), row
// lengths of 1 to 24 block pairs, and more than one 64-token chunk; Q4_0 also interleaved eight
// rows at a time (runtime/repack.h) where the set multiplies that layout. The int8 sums are
// exact; only the float accumulation order differs (bound: 4e-6 of the sum of the blocks'
// |terms|; measured: AVX2 1.2e-6 (interleaved Q4_0 alone 1.5e-7), AVX-512 VNNI 1.0e-6, NEON and
// NEON dot product under qemu printed).
static void expect_matrix_kernels_equal_dot_products(const runtime::Kernels& v) {
  const runtime::Kernels& p = runtime::portable_kernels();
  std::mt19937 rng(5);
  std::normal_distribution<float> nd;
  double worst = 0, worst_x8 = 0;
  int interleaved_cases = 0;
  for (const auto& [rows, tokens, pairs] : {std::tuple{1, 1, 1}, {4, 1, 9}, {7, 3, 12}, {9, 5, 2}, {13, 70, 3}, {4, 4, 24},
                                            {8, 1, 9}, {16, 70, 3}, {24, 5, 12}, {8, 4, 1}}) {
    const int64_t n = 64 * pairs;
    std::vector<float> w(size_t(rows * n)), x(size_t(tokens * n));
    for (auto& f : w) f = nd(rng);
    for (auto& f : x) f = nd(rng) * 2.f;
    std::vector<runtime::BlockQ8> xq(size_t(tokens * n / 32));
    std::vector<runtime::ActPair> xp(size_t(tokens * pairs));
    for (int64_t t = 0; t < tokens; ++t) {
      p.quantize_q8(x.data() + t * n, xq.data() + t * n / 32, n);
      runtime::make_act_pairs(xq.data() + t * n / 32, n / 32, xp.data() + t * pairs);
    }
    for (const QuantType type : {QuantType::Q4_0, QuantType::Q8_0}) {
      const size_t row_bytes = quant_row_bytes(type, n);
      std::vector<uint8_t> q(row_bytes * size_t(rows));
      for (int64_t r = 0; r < rows; ++r) quantize_row(type, w.data() + r * n, n, q.data() + size_t(r) * row_bytes);
      const bool x8 = type == QuantType::Q4_0 && v.gemm_q4_0x8 && runtime::can_interleave_q4_0(rows, n);
      std::vector<runtime::BlockQ4x8> interleaved(x8 ? size_t(rows / 8 * n / 32) : 0);
      if (x8) runtime::interleave_q4_0(q.data(), rows, n, interleaved.data());
      interleaved_cases += x8;
      for (const bool use_x8 : {false, x8}) {
        std::vector<float> y(size_t(tokens * rows), NAN);
        if (use_x8)
          v.gemm_q4_0x8(interleaved.data(), rows / 8, xp.data(), tokens, pairs, y.data(), rows);
        else
          (type == QuantType::Q4_0 ? v.gemm_q4_0 : v.gemm_q8_0)(q.data(), row_bytes, rows, xp.data(), tokens, pairs, y.data(), rows);
        const auto dot = type == QuantType::Q4_0 ? p.dot_q4_0 : p.dot_q8_0;
        for (int64_t t = 0; t < tokens; ++t)
          for (int64_t r = 0; r < rows; ++r) {
            const uint8_t* row = q.data() + size_t(r) * row_bytes;
            const runtime::BlockQ8* xt = xq.data() + t * n / 32;
            // Float sums in another order differ by a few ulp of the terms' magnitude: the bound is
            // relative to the sum of the blocks' |terms|, not to the (possibly cancelled) result.
            double magnitude = 0;
            for (int64_t b = 0; b < n / 32; ++b) magnitude += std::fabs(dot(row + size_t(b) * row_bytes / size_t(n / 32), xt + b, 32));
            const float want = dot(row, xt, n), got = y[size_t(t * rows + r)];
            (use_x8 ? worst_x8 : worst) = std::max(use_x8 ? worst_x8 : worst, double(std::fabs(got - want)) / magnitude);
            ASSERT_LE(std::fabs(got - want), 4e-6 * magnitude)
                << (use_x8 ? "interleaved " : "") << "rows " << rows << " tokens " << tokens << " pairs " << pairs
                << " at token " << t << " row " << r << ": " << got << " vs " << want;
          }
        if (!x8) break;
      }
    }
  }
  EXPECT_EQ(interleaved_cases, v.gemm_q4_0x8 ? 4 : 0);
  std::printf("%s matrix kernels vs portable dot products: largest relative difference %.2e", v.name, worst);
  if (v.gemm_q4_0x8) std::printf(" (interleaved Q4_0: %.2e)", worst_x8);
  std::printf("\n");
}

// Interleaving (runtime/repack.h) moves bytes only: every row read back from the interleaved
// matrix dequantizes bit for bit as the original row, and only whole groups of eight rows of
// whole 64-value pairs are interleaved.
TEST(RuntimeKernels, InterleavedQ4_0RowsReadBackExactly) {
  std::mt19937 rng(9);
  std::normal_distribution<float> nd;
  const int64_t rows = 24, n = 192;
  std::vector<float> w(size_t(rows * n));
  for (auto& f : w) f = nd(rng);
  const size_t row_bytes = quant_row_bytes(QuantType::Q4_0, n);
  std::vector<uint8_t> q(row_bytes * size_t(rows));
  for (int64_t r = 0; r < rows; ++r) quantize_row(QuantType::Q4_0, w.data() + r * n, n, q.data() + size_t(r) * row_bytes);
  std::vector<runtime::BlockQ4x8> interleaved(size_t(rows / 8 * n / 32));
  runtime::interleave_q4_0(q.data(), rows, n, interleaved.data());
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> want(static_cast<size_t>(n)), got(static_cast<size_t>(n), NAN);
    dequantize_row(QuantType::Q4_0, q.data() + size_t(r) * row_bytes, n, want.data());
    runtime::dequantize_row_q4_0x8(interleaved.data(), n, r, got.data());
    ASSERT_EQ(std::memcmp(want.data(), got.data(), sizeof(float) * size_t(n)), 0) << "row " << r;
  }
  EXPECT_TRUE(runtime::can_interleave_q4_0(8, 64));
  EXPECT_FALSE(runtime::can_interleave_q4_0(12, 64));
  EXPECT_FALSE(runtime::can_interleave_q4_0(8, 96));
  EXPECT_FALSE(runtime::can_interleave_q4_0(0, 64));
}

TEST(RuntimeKernels, MatrixKernelsEqualDotProducts) {
  int tested = 0;
  for (const runtime::Kernels* simd : simd_sets())
    if (simd->gemm_q4_0) {
      SCOPED_TRACE(simd->name);
      expect_matrix_kernels_equal_dot_products(*simd);
      ++tested;
    }
  // Every SIMD set of x86-64 but AVX-512 (four-row dot products instead) and both ARM sets have them.
  EXPECT_EQ(runtime::portable_kernels().gemm_q4_0, nullptr);
  EXPECT_GE(tested, simd_sets().empty() ? 0 : 1);
}
