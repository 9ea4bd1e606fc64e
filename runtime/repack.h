// Q4_0 matrices rearranged at load for kernel sets that multiply eight rows at once
// (kernels.h BlockQ4x8, Kernels::gemm_q4_0x8): the same bytes in another order, so the
// interleaved copy costs no memory once the mapped pages of the original are released.
#pragma once
#include <cstddef>
#include <cstdint>

#include "runtime/kernels.h"

namespace gemkit::runtime {

// Whether a [rows, cols] Q4_0 matrix can be interleaved: whole groups of eight rows, and rows of
// whole 64-value pairs (the matrix kernels' activation layout, kernels.h ActPair).
bool can_interleave_q4_0(int64_t rows, int64_t cols);

// src: `rows` (a multiple of 8) Q4_0 rows of `cols` values, row after row; dst: rows / 8 groups
// of cols / 32 BlockQ4x8, group after group.
void interleave_q4_0(const uint8_t* src, int64_t rows, int64_t cols, BlockQ4x8* dst);

// Row `row` of an interleaved matrix, dequantized exactly as formats/block_quant.h does the
// original row (an embedding lookup in a tied, interleaved matrix).
void dequantize_row_q4_0x8(const BlockQ4x8* w, int64_t cols, int64_t row, float* out);

// Drops the whole pages inside [p, p + bytes) of a read-only file mapping from memory (they are
// read again from the file if touched); a no-op where the system has no madvise.
void release_mapped_pages(const void* p, size_t bytes);

}  // namespace gemkit::runtime
