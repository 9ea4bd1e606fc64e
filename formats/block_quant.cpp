#include "formats/block_quant.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>

#include "core/error.h"

namespace gemkit {

const char* quant_type_name(QuantType t) {
  switch (t) {
    case QuantType::F32: return "f32";
    case QuantType::F16: return "f16";
    case QuantType::Q4_0: return "q4_0";
    case QuantType::Q8_0: return "q8_0";
  }
  return "?";
}

QuantType parse_quant_type(const std::string& name, const std::string& where) {
  std::string s = name;
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (QuantType t : {QuantType::F32, QuantType::F16, QuantType::Q8_0, QuantType::Q4_0})
    if (s == quant_type_name(t)) return t;
  fail(where, "expected one of f32, f16, q8_0, q4_0, got '" + name + "'");
}

bool is_quant_type_id(uint32_t id) { return id == kGgmlF32 || id == kGgmlF16 || id == kGgmlQ4_0 || id == kGgmlQ8_0; }

bool is_block_quantized(QuantType t) { return t == QuantType::Q8_0 || t == QuantType::Q4_0; }

bool quant_row_fits(QuantType t, int64_t n) { return n > 0 && (!is_block_quantized(t) || n % kQuantBlock == 0); }

size_t quant_row_bytes(QuantType t, int64_t n) {
  if (!quant_row_fits(t, n))
    fail(quant_type_name(t), "a row of " + std::to_string(n) + " values does not fit (block types need a multiple of 32)");
  switch (t) {
    case QuantType::F32: return static_cast<size_t>(n) * 4;
    case QuantType::F16: return static_cast<size_t>(n) * 2;
    case QuantType::Q8_0: return static_cast<size_t>(n / kQuantBlock) * 34;
    case QuantType::Q4_0: return static_cast<size_t>(n / kQuantBlock) * 18;
  }
  return 0;
}

uint16_t fp32_to_fp16(float x) {
  uint32_t bits;
  std::memcpy(&bits, &x, 4);
  const uint16_t sign = static_cast<uint16_t>((bits >> 16) & 0x8000u);
  const uint32_t abs = bits & 0x7fffffffu;
  if (abs >= 0x7f800000u) return sign | (abs > 0x7f800000u ? 0x7e00 : 0x7c00);  // NaN, inf
  if (abs >= 0x47800000u) return sign | 0x7c00;                                  // >= 65536: inf
  if (abs < 0x38800000u) {
    // Below 2^-14, the smallest normal half: a subnormal count of 2^-24 units. Scaling by
    // 2^24 is exact, and nearbyint rounds half to even in the default rounding mode.
    float v;
    std::memcpy(&v, &abs, 4);
    return sign | static_cast<uint16_t>(std::nearbyint(v * 16777216.0f));
  }
  // Normal: rebias the exponent, keep 10 mantissa bits, round the 13 dropped bits to nearest
  // even; a carry ripples into the exponent (up to inf) as it should.
  uint32_t h = ((abs >> 23) - 127 + 15) << 10 | ((abs >> 13) & 0x3ffu);
  const uint32_t rest = abs & 0x1fffu;
  if (rest > 0x1000u || (rest == 0x1000u && (h & 1u))) ++h;
  return static_cast<uint16_t>(sign | h);
}

float fp16_to_fp32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu, mant = h & 0x3ffu;
  uint32_t bits;
  if (exp == 0) {
    const float v = static_cast<float>(mant) / 16777216.0f;  // mant * 2^-24, exact
    std::memcpy(&bits, &v, 4);
    bits |= sign;
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | (mant << 13);
  } else {
    bits = sign | ((exp - 15 + 127) << 23) | (mant << 13);
  }
  float out;
  std::memcpy(&out, &bits, 4);
  return out;
}

namespace {

void put_fp16(uint8_t* p, uint16_t h) { p[0] = static_cast<uint8_t>(h & 0xff); p[1] = static_cast<uint8_t>(h >> 8); }
uint16_t get_fp16(const uint8_t* p) { return static_cast<uint16_t>(p[0] | (p[1] << 8)); }

// C's float -> int8_t conversion, truncating. When the block's scale is so small (largest
// magnitude below about 4e-37) that 1/d overflows to inf, the value is not finite: C leaves
// that undefined and llama.cpp's x86-64 build produces 0 (cvttss2si's 0x80000000, low byte 0);
// 0 it is here too, and in the fake quantizer, so such a block dequantizes to zeros everywhere.
int8_t to_int8(float v) { return std::isfinite(v) ? static_cast<int8_t>(v) : 0; }

void quantize_block_q8_0(const float* x, uint8_t* out) {
  float amax = 0.0f;
  for (int j = 0; j < kQuantBlock; ++j) amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_fp16(out, fp32_to_fp16(d));
  for (int j = 0; j < kQuantBlock; ++j) out[2 + j] = static_cast<uint8_t>(to_int8(std::roundf(x[j] * id)));
}

void quantize_block_q4_0(const float* x, uint8_t* out) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < kQuantBlock; ++j) {
    if (amax < std::fabs(x[j])) {  // strict: the first of equal magnitudes wins
      amax = std::fabs(x[j]);
      max = x[j];
    }
  }
  const float d = max / -8;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  put_fp16(out, fp32_to_fp16(d));
  for (int j = 0; j < kQuantBlock / 2; ++j) {
    const uint8_t lo = static_cast<uint8_t>(std::min(15, static_cast<int>(to_int8(x[j] * id + 8.5f))));
    const uint8_t hi = static_cast<uint8_t>(std::min(15, static_cast<int>(to_int8(x[j + 16] * id + 8.5f))));
    out[2 + j] = static_cast<uint8_t>(lo | (hi << 4));
  }
}

}  // namespace

void quantize_row(QuantType t, const float* x, int64_t n, uint8_t* out) {
  quant_row_bytes(t, n);  // validates n
  switch (t) {
    case QuantType::F32: std::memcpy(out, x, static_cast<size_t>(n) * 4); return;
    case QuantType::F16:
      for (int64_t i = 0; i < n; ++i) put_fp16(out + 2 * i, fp32_to_fp16(x[i]));
      return;
    case QuantType::Q8_0:
      for (int64_t b = 0; b < n / kQuantBlock; ++b) quantize_block_q8_0(x + b * kQuantBlock, out + b * 34);
      return;
    case QuantType::Q4_0:
      for (int64_t b = 0; b < n / kQuantBlock; ++b) quantize_block_q4_0(x + b * kQuantBlock, out + b * 18);
      return;
  }
}

void dequantize_row(QuantType t, const uint8_t* in, int64_t n, float* y) {
  quant_row_bytes(t, n);
  switch (t) {
    case QuantType::F32: std::memcpy(y, in, static_cast<size_t>(n) * 4); return;
    case QuantType::F16:
      for (int64_t i = 0; i < n; ++i) y[i] = fp16_to_fp32(get_fp16(in + 2 * i));
      return;
    case QuantType::Q8_0:
      for (int64_t b = 0; b < n / kQuantBlock; ++b) {
        const uint8_t* blk = in + b * 34;
        const float d = fp16_to_fp32(get_fp16(blk));
        for (int j = 0; j < kQuantBlock; ++j) y[b * kQuantBlock + j] = static_cast<float>(static_cast<int8_t>(blk[2 + j])) * d;
      }
      return;
    case QuantType::Q4_0:
      for (int64_t b = 0; b < n / kQuantBlock; ++b) {
        const uint8_t* blk = in + b * 18;
        const float d = fp16_to_fp32(get_fp16(blk));
        for (int j = 0; j < kQuantBlock / 2; ++j) {
          y[b * kQuantBlock + j] = static_cast<float>((blk[2 + j] & 0x0f) - 8) * d;
          y[b * kQuantBlock + j + 16] = static_cast<float>((blk[2 + j] >> 4) - 8) * d;
        }
      }
      return;
  }
}

}  // namespace gemkit
