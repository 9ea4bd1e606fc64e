#include "quant/fake_quant.h"

#include "core/error.h"

namespace gemkit {

namespace {

// IEEE fp32 division by a tensor of the same shape: a scalar divisor may be turned into a
// multiplication by its reciprocal by the CPU kernel, which is not what ggml computes.
torch::Tensor divide(const torch::Tensor& a, double b) { return a / torch::full_like(a, b); }

// C's roundf: half away from zero. torch::round rounds half to even.
torch::Tensor round_half_away(const torch::Tensor& x) {
  const torch::Tensor t = torch::trunc(x);
  const torch::Tensor frac = (x - t).abs();  // exact for |x| < 2^23
  return t + torch::sign(x) * (frac >= 0.5).to(x.scalar_type());
}

torch::Tensor reciprocal_or_zero(const torch::Tensor& d) {
  return torch::where(d != 0, torch::ones_like(d) / d, torch::zeros_like(d));
}

torch::Tensor through_fp16(const torch::Tensor& x) { return x.to(torch::kHalf).to(torch::kFloat); }

torch::Tensor q8_0(const torch::Tensor& blocks) {
  const torch::Tensor d = divide(blocks.abs().amax(1, true), 127.0);
  const torch::Tensor scaled = blocks * reciprocal_or_zero(d);
  // Not finite only when 1/d overflowed (a block below ~4e-37): 0, as block_quant.cpp's to_int8.
  const torch::Tensor q = torch::where(torch::isfinite(scaled), round_half_away(scaled), torch::zeros_like(scaled));
  return q * through_fp16(d);
}

torch::Tensor q4_0(const torch::Tensor& blocks) {
  // The first element of largest magnitude (argmax returns the first maximal index).
  const torch::Tensor m = blocks.gather(1, blocks.abs().argmax(1, true));
  const torch::Tensor d = divide(m, -8.0);
  const torch::Tensor shifted = blocks * reciprocal_or_zero(d) + 8.5f;
  const torch::Tensor q = torch::where(torch::isfinite(shifted), torch::clamp_max(torch::trunc(shifted), 15.0), torch::zeros_like(shifted));
  return (q - 8) * through_fp16(d);
}

}  // namespace

torch::Tensor quantize_dequantize(const torch::Tensor& w, QuantType t, const std::string& what) {
  torch::NoGradGuard no_grad;
  if (w.scalar_type() != torch::kFloat) fail(what, "fake quantization expects float32, got " + std::string(c10::toString(w.scalar_type())));
  if (t == QuantType::F32) return w;
  if (t == QuantType::F16) return through_fp16(w);
  const int64_t n = w.dim() == 0 ? 1 : w.size(-1);
  if (!quant_row_fits(t, n))
    fail(what, std::string(quant_type_name(t)) + " needs rows of a multiple of 32 values, got " + std::to_string(n));
  const torch::Tensor blocks = w.contiguous().view({-1, kQuantBlock});
  return (t == QuantType::Q8_0 ? q8_0(blocks) : q4_0(blocks)).view(w.sizes());
}

torch::Tensor fake_quantize(const torch::Tensor& w, QuantType t, const std::string& what) {
  if (t == QuantType::F32) return w;
  // Value: exactly the round trip (fq + 0 is fq). Gradient: the identity through (w - w.detach()).
  return quantize_dequantize(w.detach(), t, what) + (w - w.detach());
}

}  // namespace gemkit
