// GGUF block quantization (ggml types Q8_0 and Q4_0) and the fp16 conversion they use, written
// to reproduce llama.cpp's reference quantizer (ggml-quants.c, quantize_row_*_ref) byte for
// byte. Torch-free: the exporter, the runtime and the fake quantizer's tests all use it.
//
// Q8_0: 32 values per block, 34 bytes: fp16 d, 32 x int8.
//   d = amax / 127 (fp32); id = d ? 1/d : 0; q = roundf(x * id) (half away from zero);
//   value = q * fp16(d).
// Q4_0: 32 values per block, 18 bytes: fp16 d, 16 bytes of nibbles.
//   m = the first element of largest magnitude, with its sign; d = m / -8; id = d ? 1/d : 0;
//   q = min(15, trunc(x * id + 8.5)); byte j = q[j] | q[j+16] << 4; value = (q - 8) * fp16(d).
// Quantization multiplies by the fp32 1/d; dequantization multiplies by the fp16 d.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "formats/gguf_keys.h"

namespace gemkit {

// The storage types an exported tensor can have (numbered as ggml's types).
enum class QuantType : uint32_t { F32 = kGgmlF32, F16 = kGgmlF16, Q4_0 = kGgmlQ4_0, Q8_0 = kGgmlQ8_0 };
// Whether ggml type id `id` is one of QuantType's.
bool is_quant_type_id(uint32_t id);

constexpr int64_t kQuantBlock = 32;  // values per Q8_0 / Q4_0 block

const char* quant_type_name(QuantType t);  // "f32", "f16", "q4_0", "q8_0"
// Parses a name as above (case-insensitive); throws gemkit::Error "WHERE: expected one of ...".
QuantType parse_quant_type(const std::string& name, const std::string& where);
bool is_block_quantized(QuantType t);  // Q8_0, Q4_0
// Bytes of one row of n values; n must be a multiple of 32 for the block types.
size_t quant_row_bytes(QuantType t, int64_t n);
// Whether a row of n values can be stored as t (block types need n % 32 == 0).
bool quant_row_fits(QuantType t, int64_t n);

// IEEE binary16 conversions, round to nearest even (what F16C's vcvtps2ph and ggml do).
uint16_t fp32_to_fp16(float x);
float fp16_to_fp32(uint16_t h);

// One row of n values into quant_row_bytes(t, n) bytes, and back. Throws gemkit::Error when n
// does not fit the type.
void quantize_row(QuantType t, const float* x, int64_t n, uint8_t* out);
void dequantize_row(QuantType t, const uint8_t* in, int64_t n, float* y);

}  // namespace gemkit
