// Small building blocks of both families: named scopes (to reproduce Hugging Face module paths),
// RMSNorm, rotary position embedding (RoPE) and activations.
#pragma once
#include <torch/torch.h>

#include <string>

#include "formats/model_config.h"

namespace gemkit {

// An empty module that only gives a name to a level of the module tree, so that parameters get
// their Hugging Face names (model.layers.0.self_attn.q_proj.weight needs "self_attn" to exist).
// Module names may not contain dots, hence one Scope per path component.
struct ScopeImpl : torch::nn::Module {};
TORCH_MODULE(Scope);

// Llama's RMSNorm: x * rsqrt(mean(x^2) + eps) * w, normalised in fp32 whatever the input dtype
// (as Hugging Face does), then cast back before the weight multiply. LibTorch 1.13 has no op.
class RMSNormImpl : public torch::nn::Module {
 public:
  RMSNormImpl(int64_t dim, double eps);
  torch::Tensor forward(const torch::Tensor& x);
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RMSNorm);

// BERT's LayerNorm with weight and bias (names "weight", "bias").
torch::nn::LayerNorm make_layer_norm(int64_t dim, double eps);
// An embedding table initialised like Hugging Face (normal, std 0.02).
torch::nn::Embedding make_embedding(int64_t num, int64_t dim);

// RoPE, Hugging Face "rotate half" convention: the first and second halves of each head's
// dimensions form the rotated pairs. Tables are computed from the positions on the fly (no
// buffer: nothing but HF tensors is registered, and positions may exceed any precomputed table).
struct Rope {
  double theta = 10000.0;
  int64_t head_dim = 0;
  RopeScaling scaling;  // "default", "linear" or "llama3" (validated with the ModelConfig)
  // The per-pair inverse frequencies [head_dim / 2], fp32, with the scaling applied.
  torch::Tensor inv_freq(const torch::Device& device) const;
  // cos and sin [B, T, head_dim] for integer positions [B, T], computed in fp32, cast to dtype.
  std::pair<torch::Tensor, torch::Tensor> tables(const torch::Tensor& positions,
                                                 torch::ScalarType dtype) const;
};
// x [B, heads, T, head_dim]; cos/sin [B, T, head_dim].
torch::Tensor apply_rope(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin);

// Activation by Hugging Face name: silu/swish, gelu (erf form), gelu_new/gelu_pytorch_tanh (tanh
// form), relu. is_known_activation is used by config validation.
bool is_known_activation(const std::string& name);
torch::Tensor activation(const std::string& name, const torch::Tensor& x);

}  // namespace gemkit
