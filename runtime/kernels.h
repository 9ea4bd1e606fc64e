// Dot products of one weight row with one activation row, per storage type, as llama.cpp's CPU
// path computes them: Q8_0 and Q4_0 weights against activations quantized to Q8_0 blocks of 32
// (round to nearest even, fp16 scale), f16 and f32 weights against f32 activations.
// Implementations: portable C++; on x86-64 AVX2 (+FMA, F16C; with the matrix kernels gemm_q4_0 /
// gemm_q8_0), AVX-512 (F, BW, VL, DQ; four-row dot products), AVX-512 VNNI (AVX-512 with its own
// matrix kernels); on AArch64 NEON and NEON with the ARMv8.2 dot product (both with matrix
// kernels). The best the CPU has is chosen once at run time
// (GEMKIT_RUNTIME_KERNELS=portable|avx2|avx512|avx512_vnni|neon|neon_dotprod forces one, for
// tests and comparison; a forced set the CPU lacks falls back to the best available).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "formats/block_quant.h"

namespace gemkit::runtime {

struct BlockQ8 {  // ggml's block_q8_0
  uint16_t d;
  int8_t qs[32];
};
struct BlockQ4 {  // ggml's block_q4_0
  uint16_t d;
  uint8_t qs[16];
};
// Eight Q4_0 weight rows, one 32-value block each, interleaved (runtime/repack.h): the eight
// scales, then the nibble bytes in four 32-byte groups; group g holds bytes 4g..4g+3 of each
// row's qs in turn (row k at 4k), so one 256-bit load puts row k's bytes in 32-bit lane k.
// A byte's low nibble is value 4g + i of its row, its high nibble value 16 + 4g + i.
struct BlockQ4x8 {
  uint16_t d[8];
  uint8_t qs[128];
};
static_assert(sizeof(BlockQ8) == 34 && sizeof(BlockQ4) == 18 && sizeof(BlockQ4x8) == 8 * sizeof(BlockQ4),
              "ggml block layouts; the interleaved block is the same bytes rearranged");

// Two consecutive Q8_0 activation blocks (64 values) laid out for the matrix kernels: the
// quantized values; minus 8 and minus 128 times each block's sum of values in the first of its
// eight int32 lanes (lanes 0 and 8; the offsets that make Q4_0 and Q8_0 weights unsigned,
// kernels_vnni.cpp); each block's scale in its eight float lanes. 256 bytes per 64 values:
// what the kernels need is loaded, never recomputed per weight row.
struct alignas(64) ActPair {
  int8_t qs[64];
  int32_t neg_sum_x8[16];
  int32_t neg_sum_x128[16];
  float d[16];
};
// x: `blocks` (even) blocks of one row -> blocks / 2 pairs.
void make_act_pairs(const BlockQ8* x, int64_t blocks, ActPair* out);

struct Kernels {
  const char* name;
  // n: row length (a multiple of 32 for the block types); x: the activation row in the form
  // the weight type multiplies with (BlockQ8[n/32] for Q8_0/Q4_0, float[n] otherwise).
  float (*dot_q8_0)(const void* w, const BlockQ8* x, int64_t n);
  float (*dot_q4_0)(const void* w, const BlockQ8* x, int64_t n);
  float (*dot_f16)(const void* w, const float* x, int64_t n);
  float (*dot_f32)(const void* w, const float* x, int64_t n);
  void (*quantize_q8)(const float* x, BlockQ8* out, int64_t n);
  void (*axpy_f32)(float a, const float* x, float* y, int64_t n);  // y += a x (attention's value sum)
  // Attention's softmax numerator: x[i] = exp(x[i] - max x) for i < n (n >= 1); returns their sum.
  double (*exp_sub_max)(float* x, int64_t n);
  // Optional (nullptr: use the single-row ones): four consecutive weight rows (row r at
  // w + r * stride) against one activation row, so the activation blocks are loaded and
  // prepared once for four rows.
  void (*dot4_q4_0)(const uint8_t* w, size_t stride, const BlockQ8* x, int64_t n, float* out);
  void (*dot4_q8_0)(const uint8_t* w, size_t stride, const BlockQ8* x, int64_t n, float* out);
  // Optional matrix kernels (nullptr: the dot products): y[t * ldy + r] = W[r] . x[t] for
  // `rows` weight rows (row r at w + r * row_bytes) and `tokens` activation rows of `pairs`
  // ActPairs each (row length 64 * pairs).
  void (*gemm_q4_0)(const uint8_t* w, size_t row_bytes, int64_t rows, const ActPair* x, int64_t tokens,
                    int64_t pairs, float* y, int64_t ldy);
  void (*gemm_q8_0)(const uint8_t* w, size_t row_bytes, int64_t rows, const ActPair* x, int64_t tokens,
                    int64_t pairs, float* y, int64_t ldy);
  // Optional: the same product for Q4_0 weights interleaved eight rows at a time (`groups` of
  // eight rows, each group 2 * pairs consecutive BlockQ4x8). When a set has it, the model
  // interleaves its Q4_0 matrices at load (runtime/repack.h) and uses it for decoding and prompts.
  void (*gemm_q4_0x8)(const BlockQ4x8* w, int64_t groups, const ActPair* x, int64_t tokens, int64_t pairs, float* y,
                      int64_t ldy);
  // One query head q[D] against n cached positions, key row s at K + s * stride and value row s
  // at V + s * stride: out[D] = sum_s softmax_s(q . K[s] * scale) V[s]. `scores`: n floats of
  // scratch. attend_loop below (the set's own kernels in turn) unless the set has a fused one.
  void (*attend_f32)(const float* q, const float* K, const float* V, int64_t stride, int64_t n, int64_t D, float scale,
                     float* scores, float* out);
};

const Kernels& kernels();          // the best for this CPU (or the forced one)
const Kernels& portable_kernels();
// Every set this CPU runs, portable first, then narrowest to widest (the last is the best).
std::vector<const Kernels*> available_kernels();
// Each set is compiled only for its architecture (x86-64: avx2, avx512, avx512_vnni; AArch64:
// neon, neon_dotprod) and called only when the CPU has it.
const Kernels* avx2_kernels();
const Kernels* avx512_kernels();
const Kernels* avx512_vnni_kernels();
const Kernels* neon_kernels();
const Kernels* neon_dotprod_kernels();
bool cpu_has_avx2();          // AVX2, FMA, F16C
bool cpu_has_avx512();        // and AVX-512 F, BW, VL, DQ
bool cpu_has_avx512_vnni();   // and AVX-512 VNNI
bool cpu_has_neon_dotprod();  // AArch64 with the dot-product instructions (ASIMDDP)

float fp16_to_fp32_fast(uint16_t h);  // table lookup

// attend_f32 as a loop over the set's own kernels: a dot product per cached position, the
// softmax numerators, an axpy per position (the reference, and the sets without a fused kernel).
template <float (*Dot)(const void*, const float*, int64_t), double (*Exp)(float*, int64_t),
          void (*Axpy)(float, const float*, float*, int64_t)>
void attend_loop(const float* q, const float* K, const float* V, int64_t stride, int64_t n, int64_t D, float scale,
                 float* scores, float* out) {
  for (int64_t s = 0; s < n; ++s) scores[s] = Dot(K + s * stride, q, D) * scale;
  const float inv = float(1.0 / Exp(scores, n));
  for (int64_t i = 0; i < D; ++i) out[i] = 0.f;
  for (int64_t s = 0; s < n; ++s) Axpy(scores[s] * inv, V + s * stride, out, D);
}

}  // namespace gemkit::runtime
