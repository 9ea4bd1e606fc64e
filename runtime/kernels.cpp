#include "runtime/kernels.h"

#include <cmath>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif
#if defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#ifndef HWCAP_ASIMDDP
#define HWCAP_ASIMDDP (1 << 20)  // Linux's AArch64 hwcap bit for the dot-product instructions
#endif
#endif
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace gemkit::runtime {

namespace {

const std::vector<float>& fp16_table() {
  static const std::vector<float> table = [] {
    std::vector<float> t(65536);
    for (uint32_t i = 0; i < 65536; ++i) t[i] = fp16_to_fp32(static_cast<uint16_t>(i));
    return t;
  }();
  return table;
}

float dot_q8_0(const void* w, const BlockQ8* x, int64_t n) {
  const BlockQ8* b = static_cast<const BlockQ8*>(w);
  float sum = 0;
  for (int64_t i = 0; i < n / 32; ++i) {
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) s += int32_t(b[i].qs[j]) * int32_t(x[i].qs[j]);
    sum += float(s) * fp16_to_fp32_fast(b[i].d) * fp16_to_fp32_fast(x[i].d);
  }
  return sum;
}

float dot_q4_0(const void* w, const BlockQ8* x, int64_t n) {
  const BlockQ4* b = static_cast<const BlockQ4*>(w);
  float sum = 0;
  for (int64_t i = 0; i < n / 32; ++i) {
    int32_t s = 0;
    for (int j = 0; j < 16; ++j) {
      s += (int32_t(b[i].qs[j] & 0x0f) - 8) * int32_t(x[i].qs[j]);
      s += (int32_t(b[i].qs[j] >> 4) - 8) * int32_t(x[i].qs[j + 16]);
    }
    sum += float(s) * fp16_to_fp32_fast(b[i].d) * fp16_to_fp32_fast(x[i].d);
  }
  return sum;
}

float dot_f16(const void* w, const float* x, int64_t n) {
  const uint16_t* h = static_cast<const uint16_t*>(w);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += fp16_to_fp32_fast(h[i]) * x[i];
  return sum;
}

float dot_f32(const void* w, const float* x, int64_t n) {
  const float* f = static_cast<const float*>(w);
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += f[i] * x[i];
  return sum;
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

double exp_sub_max(float* x, int64_t n) {
  float mx = x[0];
  for (int64_t i = 1; i < n; ++i) mx = std::max(mx, x[i]);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += (x[i] = std::exp(x[i] - mx));
  return sum;
}

// llama.cpp's activation quantizer (quantize_row_q8_0 on x86): d = amax / 127, values rounded
// to nearest even (the SIMD path's _mm256_round_ps), fp16 d.
void quantize_q8(const float* x, BlockQ8* out, int64_t n) {
  for (int64_t i = 0; i < n / 32; ++i) {
    float amax = 0;
    for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i * 32 + j]));
    const float d = amax / 127.f;
    const float id = amax != 0.f ? 127.f / amax : 0.f;
    out[i].d = fp32_to_fp16(d);
    for (int j = 0; j < 32; ++j) out[i].qs[j] = static_cast<int8_t>(std::nearbyint(x[i * 32 + j] * id));
  }
}

const Kernels kPortable = {"portable", dot_q8_0, dot_q4_0, dot_f16, dot_f32, quantize_q8, axpy_f32, exp_sub_max,
                           nullptr,    nullptr,  nullptr, nullptr, nullptr, attend_loop<dot_f32, exp_sub_max, axpy_f32>};

}  // namespace

float fp16_to_fp32_fast(uint16_t h) { return fp16_table()[h]; }

void make_act_pairs(const BlockQ8* x, int64_t blocks, ActPair* out) {
  for (int64_t p = 0; p < blocks / 2; ++p) {
    ActPair& a = out[p];
    std::fill(std::begin(a.neg_sum_x8), std::end(a.neg_sum_x8), 0);
    std::fill(std::begin(a.neg_sum_x128), std::end(a.neg_sum_x128), 0);
    for (int half = 0; half < 2; ++half) {
      const BlockQ8& b = x[2 * p + half];
      int32_t sum = 0;
      for (int j = 0; j < 32; ++j) sum += b.qs[j];
      std::memcpy(a.qs + 32 * half, b.qs, 32);
      a.neg_sum_x8[8 * half] = -8 * sum;
      a.neg_sum_x128[8 * half] = -128 * sum;
      std::fill(a.d + 8 * half, a.d + 8 * half + 8, fp16_to_fp32_fast(b.d));
    }
  }
}

const Kernels& portable_kernels() { return kPortable; }

bool cpu_has_avx2() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // F16C is CPUID leaf 1, ECX bit 29 (not every compiler's __builtin_cpu_supports knows it).
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  const bool f16c = __get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & (1u << 29));
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && f16c;
#else
  return false;
#endif
}

bool cpu_has_avx512_vnni() {
#if defined(__x86_64__) || defined(__i386__)
  return cpu_has_avx512() && __builtin_cpu_supports("avx512vnni");
#else
  return false;
#endif
}

bool cpu_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
  return cpu_has_avx2() && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
#else
  return false;
#endif
}

bool cpu_has_neon_dotprod() {
#if defined(__aarch64__) && defined(__linux__)  // Linux and Android
  return (getauxval(AT_HWCAP) & HWCAP_ASIMDDP) != 0;
#else  // elsewhere (iOS, macOS: not built by this project) plain NEON until a check is added
  return false;
#endif
}

std::vector<const Kernels*> available_kernels() {
  std::vector<const Kernels*> sets{&kPortable};
#if defined(__x86_64__)
  if (cpu_has_avx2()) sets.push_back(avx2_kernels());
  if (cpu_has_avx512()) sets.push_back(avx512_kernels());
  if (cpu_has_avx512_vnni()) sets.push_back(avx512_vnni_kernels());
#elif defined(__aarch64__)
  sets.push_back(neon_kernels());  // Advanced SIMD is part of every ARMv8-A CPU
  if (cpu_has_neon_dotprod()) sets.push_back(neon_dotprod_kernels());
#endif
  return sets;
}

const Kernels& kernels() {
  static const Kernels* chosen = [] {
    fp16_table();
    const std::vector<const Kernels*> sets = available_kernels();
    const char* force = std::getenv("GEMKIT_RUNTIME_KERNELS");
    for (const Kernels* k : sets)
      if (force && std::string(force) == k->name) return k;
    return sets.back();
  }();
  return *chosen;
}

}  // namespace gemkit::runtime
