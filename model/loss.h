// Training losses of the three heads. Cross-entropy is computed in fp32 whatever the logits'
// dtype, averaged over the labels that are not kIgnoreIndex (Hugging Face semantics).
#pragma once
#include <torch/torch.h>

namespace gemkit {

constexpr int64_t kIgnoreIndex = -100;

// logits [B, T, V], labels [B, T] aligned with the input ids: position t predicts labels[t + 1].
torch::Tensor causal_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels);
// logits [B, T, V], labels [B, T]: kIgnoreIndex except at masked positions.
torch::Tensor masked_lm_loss(const torch::Tensor& logits, const torch::Tensor& labels);
// logits [B, C], labels [B].
torch::Tensor classification_loss(const torch::Tensor& logits, const torch::Tensor& labels);

}  // namespace gemkit
