#include "formats/ggml_dequant.h"

#include <cstring>
#include <string>

#include "core/error.h"
#include "formats/block_quant.h"
#include "formats/gguf.h"
#include "formats/gguf_keys.h"

namespace gemkit {

namespace {

// The types ggml_dequantize_row implements, by the names its messages use. Their block sizes come
// from the GGUF reader's table of every ggml type (formats/gguf.h), not written again here.
struct Supported {
  uint32_t id;
  const char* name;
};

constexpr Supported kSupported[] = {
    {kGgmlF32, "f32"},   {kGgmlF16, "f16"},   {kGgmlBF16, "bf16"}, {kGgmlQ8_0, "q8_0"},
    {kGgmlQ4_0, "q4_0"}, {kGgmlQ4_1, "q4_1"}, {kGgmlQ5_0, "q5_0"}, {kGgmlQ5_1, "q5_1"},
    {kGgmlQ4_K, "q4_k"}, {kGgmlQ5_K, "q5_k"}, {kGgmlQ6_K, "q6_k"},
};

const Supported* supported(uint32_t type) {
  for (const Supported& t : kSupported)
    if (t.id == type) return &t;
  return nullptr;
}

struct TypeInfo {
  const char* name;
  uint32_t block_elems, block_bytes;
};

TypeInfo require(uint32_t type) {
  const Supported* t = supported(type);
  if (!t)
    fail("ggml type " + std::to_string(type),
         "not supported for import (expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k or q6_k)");
  const GgmlTypeInfo* sizes = ggml_type_info(type);
  return {t->name, sizes->block_elems, sizes->block_bytes};
}

float half(const uint8_t* p) { return fp16_to_fp32(static_cast<uint16_t>(p[0] | p[1] << 8)); }

uint32_t u32(const uint8_t* p) {
  return static_cast<uint32_t>(p[0]) | static_cast<uint32_t>(p[1]) << 8 | static_cast<uint32_t>(p[2]) << 16 |
         static_cast<uint32_t>(p[3]) << 24;
}

float bf16(const uint8_t* p) {
  const uint32_t bits = static_cast<uint32_t>(p[0] | p[1] << 8) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// Q4_0 / Q4_1 / Q5_0 / Q5_1: 32 values; `fifth` (null for the 4-bit types) holds bit 4 of
// value j in bit j; `m` (null for the symmetric types) is the block minimum. The symmetric
// types add nothing: adding +0.0 would turn a -0.0 product into +0.0, unlike ggml.
void q4_5_block(const uint8_t* qs, const uint8_t* fifth, float d, const uint8_t* m, int offset, float* y) {
  const uint32_t qh = fifth ? u32(fifth) : 0;
  for (int j = 0; j < 16; ++j) {
    const int lo = (qs[j] & 0x0f) | static_cast<int>(((qh >> j) << 4) & 0x10);
    const int hi = (qs[j] >> 4) | static_cast<int>((qh >> (j + 12)) & 0x10);
    y[j] = static_cast<float>(lo - offset) * d;
    y[j + 16] = static_cast<float>(hi - offset) * d;
    if (m) {
      y[j] += half(m);
      y[j + 16] += half(m);
    }
  }
}

// The 6-bit scale and min of sub-block j (0-7) of a Q4_K / Q5_K block: the first four sit in
// the low six bits of bytes 0-3 (scales) and 4-7 (mins); the last four have their low nibbles
// in bytes 8-11 and their top two bits in the spare high bits of bytes 0-7.
void scale_min_k4(int j, const uint8_t* q, int* sc, int* mn) {
  if (j < 4) {
    *sc = q[j] & 63;
    *mn = q[j + 4] & 63;
  } else {
    *sc = (q[j + 4] & 0x0f) | ((q[j - 4] >> 6) << 4);
    *mn = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

// Q4_K and Q5_K (qh null for Q4_K): 256 values as four pairs of 32-value sub-blocks.
void qk_block(const uint8_t* blk, bool five, float* y) {
  const float d = half(blk), dmin = half(blk + 2);
  const uint8_t* scales = blk + 4;
  const uint8_t* qh = five ? blk + 16 : nullptr;
  const uint8_t* ql = blk + (five ? 48 : 16);
  for (int pair = 0; pair < 4; ++pair) {
    int sc, mn;
    scale_min_k4(2 * pair, scales, &sc, &mn);
    const float d1 = d * static_cast<float>(sc), m1 = dmin * static_cast<float>(mn);
    scale_min_k4(2 * pair + 1, scales, &sc, &mn);
    const float d2 = d * static_cast<float>(sc), m2 = dmin * static_cast<float>(mn);
    const int bit1 = 1 << (2 * pair), bit2 = 2 << (2 * pair);
    for (int l = 0; l < 32; ++l) {
      const int h = qh && (qh[l] & bit1) ? 16 : 0;
      *y++ = d1 * static_cast<float>((ql[l] & 0x0f) + h) - m1;
    }
    for (int l = 0; l < 32; ++l) {
      const int h = qh && (qh[l] & bit2) ? 16 : 0;
      *y++ = d2 * static_cast<float>((ql[l] >> 4) + h) - m2;
    }
    ql += 32;
  }
}

// Q6_K: two halves of 128 values; each value is 4 low bits from ql and 2 high bits from qh.
void q6k_block(const uint8_t* blk, float* y) {
  const uint8_t* ql = blk;
  const uint8_t* qh = blk + 128;
  const int8_t* sc = reinterpret_cast<const int8_t*>(blk + 192);
  const float d = half(blk + 208);
  for (int half_i = 0; half_i < 2; ++half_i) {
    for (int l = 0; l < 32; ++l) {
      const int is = l / 16;
      const int q1 = ((ql[l] & 0x0f) | ((qh[l] & 3) << 4)) - 32;
      const int q2 = ((ql[l + 32] & 0x0f) | (((qh[l] >> 2) & 3) << 4)) - 32;
      const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
      const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
      y[l] = d * static_cast<float>(sc[is]) * static_cast<float>(q1);
      y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
      y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
      y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
    }
    y += 128;
    ql += 64;
    qh += 32;
    sc += 8;
  }
}

}  // namespace

bool ggml_can_dequantize(uint32_t type) { return supported(type) != nullptr; }
uint32_t ggml_block_elems(uint32_t type) { return require(type).block_elems; }
uint32_t ggml_block_bytes(uint32_t type) { return require(type).block_bytes; }

const char* ggml_dequant_type_name(uint32_t type) {
  const Supported* t = supported(type);
  return t ? t->name : "unsupported";
}

void ggml_dequantize_row(uint32_t type, const uint8_t* in, int64_t n, float* y) {
  const TypeInfo t = require(type);
  if (n <= 0 || n % t.block_elems != 0)
    fail(t.name, "a row of " + std::to_string(n) + " values is not a whole number of " +
                     std::to_string(t.block_elems) + "-value blocks");
  const int64_t blocks = n / t.block_elems;
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* blk = in + b * t.block_bytes;
    float* out = y + b * t.block_elems;
    switch (type) {
      case kGgmlF32: std::memcpy(out, blk, 4); break;
      case kGgmlF16: *out = half(blk); break;
      case kGgmlBF16: *out = bf16(blk); break;
      case kGgmlQ8_0:
        for (int j = 0; j < 32; ++j) out[j] = static_cast<float>(static_cast<int8_t>(blk[2 + j])) * half(blk);
        break;
      case kGgmlQ4_0: q4_5_block(blk + 2, nullptr, half(blk), nullptr, 8, out); break;
      case kGgmlQ4_1: q4_5_block(blk + 4, nullptr, half(blk), blk + 2, 0, out); break;
      case kGgmlQ5_0: q4_5_block(blk + 6, blk + 2, half(blk), nullptr, 16, out); break;
      case kGgmlQ5_1: q4_5_block(blk + 8, blk + 4, half(blk), blk + 2, 0, out); break;
      case kGgmlQ4_K: qk_block(blk, false, out); break;
      case kGgmlQ5_K: qk_block(blk, true, out); break;
      case kGgmlQ6_K: q6k_block(blk, out); break;
    }
  }
}

}  // namespace gemkit
