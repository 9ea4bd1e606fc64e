// How every matrix-kernel set (kernels_avx2.cpp, kernels_vnni.cpp, kernels_neon.cpp) walks a
// product y[t * ldy + r] = W[r] . x[t] in tiles; the sets differ only in their tile.
//
// Tokens go in chunks of 64, so a chunk's activations (256 bytes per 64 values) stay in L2 while
// every tile of rows passes over them. Within a chunk, RM rows x RN tokens per tile, ragged
// edges in 1-row and 1-token tiles. A chunk of fewer than RN tokens (decoding: one) goes one row
// at a time: one sequential stream the hardware prefetcher follows best (four rows in flight
// were 2-2.5x slower at one token: SmolLM2 Q8_0, one thread, AVX-512 VNNI 39 vs 97 tok/s, AVX2
// 15 vs 26).
#pragma once
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include "runtime/kernels.h"

namespace gemkit::runtime {

// Tile::run<M, N>(w, row_bytes, x, pairs, y, ldy): M rows (row i at w + i * row_bytes) x N tokens
// (token j's pairs at x + j * pairs), writing y[j * ldy + i]. With G > 1 a "row" is a group of G
// interleaved weight rows (kernels.h BlockQ4x8) whose results go to y[j * ldy + G * i ...].
template <class Tile, int RM, int RN, int G = 1>
void gemm_tiles(const uint8_t* w, size_t row_bytes, int64_t rows, const ActPair* x, int64_t tokens, int64_t pairs,
                float* y, int64_t ldy) {
  constexpr int64_t kChunk = 64;
  const auto token_tiles = [&](auto rm, int64_t r, const ActPair* xc, int64_t tn, float* yc) {
    constexpr int M = decltype(rm)::value;
    const uint8_t* wr = w + size_t(r) * row_bytes;
    int64_t t = 0;
    for (; t + RN <= tn; t += RN) Tile::template run<M, RN>(wr, row_bytes, xc + t * pairs, pairs, yc + G * r + t * ldy, ldy);
    for (; t < tn; ++t) Tile::template run<M, 1>(wr, row_bytes, xc + t * pairs, pairs, yc + G * r + t * ldy, ldy);
  };
  for (int64_t t0 = 0; t0 < tokens; t0 += kChunk) {
    const int64_t tn = std::min(kChunk, tokens - t0);
    const ActPair* xc = x + t0 * pairs;
    float* yc = y + t0 * ldy;
    int64_t r = 0;
    if (tn >= RN)
      for (; r + RM <= rows; r += RM) token_tiles(std::integral_constant<int, RM>{}, r, xc, tn, yc);
    for (; r < rows; ++r) token_tiles(std::integral_constant<int, 1>{}, r, xc, tn, yc);
  }
}

}  // namespace gemkit::runtime
