#include "model/layers.h"

#include <cmath>

#include "core/error.h"

namespace gemkit {

RMSNormImpl::RMSNormImpl(int64_t dim, double eps) : eps_(eps) {
  weight = register_parameter("weight", torch::ones({dim}));
}

torch::Tensor RMSNormImpl::forward(const torch::Tensor& x) {
  auto x32 = x.to(torch::kFloat32);
  auto normed = x32 * torch::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps_);
  return weight * normed.to(x.scalar_type());
}

torch::nn::LayerNorm make_layer_norm(int64_t dim, double eps) {
  return torch::nn::LayerNorm(torch::nn::LayerNormOptions({dim}).eps(eps).elementwise_affine(true));
}

torch::nn::Embedding make_embedding(int64_t num, int64_t dim) {
  torch::nn::Embedding e(num, dim);
  torch::NoGradGuard no_grad;
  e->weight.normal_(0.0, 0.02);
  return e;
}

torch::Tensor Rope::inv_freq(const torch::Device& device) const {
  auto f32 = torch::TensorOptions().dtype(torch::kFloat32).device(device);
  // inv_freq_i = theta^(-2i/d), exactly as HF computes it (int64 arange, then float).
  auto exponent = torch::arange(0, head_dim, 2, f32.dtype(torch::kInt64)).to(torch::kFloat32) /
                  static_cast<double>(head_dim);
  auto inv_freq = 1.0 / torch::pow(theta, exponent);  // [d/2]
  if (scaling.type == "default") return inv_freq;
  if (scaling.type == "linear") return inv_freq / scaling.factor;
  if (scaling.type != "llama3")
    fail("Rope::inv_freq", "unsupported rope scaling type \"" + scaling.type + "\"");
  // Llama 3.x (transformers' _compute_llama3_parameters, same fp32 operations in the same
  // order so that the frequencies match bit for bit): long wavelengths (low frequencies) are
  // interpolated by `factor`, short ones kept, and the band in between blended linearly in
  // old_context / wavelength.
  const double old_context = static_cast<double>(scaling.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / scaling.low_freq_factor;
  const double high_freq_wavelen = old_context / scaling.high_freq_factor;
  auto wavelen = 2 * M_PI / inv_freq;
  auto scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq);
  auto smooth = (old_context / wavelen - scaling.low_freq_factor) /
                (scaling.high_freq_factor - scaling.low_freq_factor);
  auto smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled;
  auto medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
  return torch::where(medium, smoothed, scaled);
}

std::pair<torch::Tensor, torch::Tensor> Rope::tables(const torch::Tensor& positions,
                                                     torch::ScalarType dtype) const {
  auto freqs = positions.to(torch::kFloat32).unsqueeze(-1) * inv_freq(positions.device());  // [B, T, d/2]
  auto emb = torch::cat({freqs, freqs}, -1);                                                // [B, T, d]
  return {emb.cos().to(dtype), emb.sin().to(dtype)};
}

torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin) {
  const int64_t half = x.size(-1) / 2;
  auto x1 = x.narrow(-1, 0, half), x2 = x.narrow(-1, half, half);
  auto rotated = torch::cat({-x2, x1}, -1);
  // Tables broadcast over the heads dimension.
  return x * cos.unsqueeze(1) + rotated * sin.unsqueeze(1);
}

bool is_known_activation(const std::string& name) {
  return name == "silu" || name == "swish" || name == "gelu" || name == "gelu_new" ||
         name == "gelu_pytorch_tanh" || name == "relu";
}

torch::Tensor activation(const std::string& name, const torch::Tensor& x) {
  if (name == "silu" || name == "swish") return torch::silu(x);
  if (name == "gelu") return torch::gelu(x);  // erf form (BERT's "gelu")
  if (name == "gelu_new" || name == "gelu_pytorch_tanh") return torch::gelu(x, "tanh");
  if (name == "relu") return torch::relu(x);
  fail("hidden_act", "unknown activation '" + name + "'");
}

}  // namespace gemkit
