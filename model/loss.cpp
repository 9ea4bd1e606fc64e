#include "model/loss.h"

namespace gemkit {

static torch::Tensor token_cross_entropy(const torch::Tensor& logits, const torch::Tensor& labels) {
  namespace F = torch::nn::functional;
  return F::cross_entropy(logits.reshape({-1, logits.size(-1)}).to(torch::kFloat32),
                          labels.reshape({-1}).to(torch::kInt64),
                          F::CrossEntropyFuncOptions().ignore_index(kIgnoreIndex));
}

torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  const int64_t T = logits.size(1);
  return token_cross_entropy(logits.narrow(1, 0, T - 1), labels.narrow(1, 1, T - 1));
}

torch::Tensor masked_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  return token_cross_entropy(logits, labels);
}

torch::Tensor classification_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  return torch::nn::functional::cross_entropy(logits.to(torch::kFloat32), labels.to(torch::kInt64));
}

}  // namespace gemkit
