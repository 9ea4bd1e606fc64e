// Dequantization of the ggml tensor types that small-model GGUF files use, for importing them:
// F32, F16, BF16, Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 (32-value blocks) and the 256-value K-quants
// Q4_K, Q5_K, Q6_K. Written from the block layouts of ggml's reference C code
// (dequantize_row_* in ggml-quants.c) and checked bit for bit against the `gguf` Python
// package's dequantizer (tests/reference/check_dequant.py). Torch-free.
//
// Block layouts (little-endian; "half" is IEEE binary16):
//   Q4_1  32 values, 20 bytes: half d, half m, 16 bytes of nibbles;      x = d*q + m
//   Q5_0  32 values, 22 bytes: half d, u32 fifth bits, 16 bytes;         x = d*(q - 16)
//   Q5_1  32 values, 24 bytes: half d, half m, u32 fifth bits, 16 bytes; x = d*q + m
//   Q4_K 256 values, 144 bytes: half d, half dmin, 12 bytes of 6-bit scales and mins for
//        eight sub-blocks of 32, 128 bytes of nibbles;           x = d*sc*q - dmin*mn
//   Q5_K 256 values, 176 bytes: as Q4_K plus 32 bytes of fifth bits before the nibbles
//   Q6_K 256 values, 210 bytes: 128 bytes of low nibbles, 64 bytes of high 2-bit pairs,
//        16 int8 scales (one per 16 values), half d;              x = d*sc*(q - 32)
// Nibble order: within a 32-value group the low nibbles hold values 0-15, the high 16-31
// (Q4_K/Q5_K: low nibbles the first sub-block of a 64-value pair, high the second).
#pragma once
#include <cstddef>
#include <cstdint>

namespace gemkit {

// Whether ggml type id `type` can be dequantized here.
bool ggml_can_dequantize(uint32_t type);
// Elements per block and bytes per block of a dequantizable type (1 and the element size for
// plain types). Throws gemkit::Error for other ids.
uint32_t ggml_block_elems(uint32_t type);
uint32_t ggml_block_bytes(uint32_t type);
// One row of n values (n a multiple of the block size) from its packed bytes. Throws
// gemkit::Error naming the type for an unsupported id or a row that does not fit its blocks.
void ggml_dequantize_row(uint32_t type, const uint8_t* in, int64_t n, float* y);
// "q4_k" etc., for messages; "type N" for ids not listed above.
const char* ggml_dequant_type_name(uint32_t type);

}  // namespace gemkit
