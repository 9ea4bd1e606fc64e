// Logits of a token sequence from gemkit's LibTorch model and from its edge runtime, and how
// two next-token distributions agree: shared by test_runtime and test_llama_cpp.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/transformer.h"
#include "runtime/model.h"

namespace gemkit::test {

// [T, V] logits of every position of one sequence (no padding), in eval mode.
inline torch::Tensor torch_logits(Transformer model, const std::vector<int32_t>& tokens) {
  torch::NoGradGuard no_grad;
  model->eval();
  const torch::Tensor ids = torch::tensor(std::vector<int64_t>(tokens.begin(), tokens.end())).unsqueeze(0);
  return model->forward(ids).logits[0];
}

// The same from gemkit-run's session on a loaded file.
inline torch::Tensor runtime_logits(const runtime::Model& m, const std::vector<int32_t>& tokens, int threads = 1) {
  runtime::Session s(m, int64_t(tokens.size()), threads);
  const std::vector<float>& all = s.eval(tokens, true);
  return torch::from_blob(const_cast<float*>(all.data()), {int64_t(tokens.size()), m.config().vocab}, torch::kFloat).clone();
}

struct Agreement {
  int64_t positions = 0;
  double top1 = 0;     // share of positions with the same most likely token
  double mean_kl = 0;  // mean over positions of KL(reference || ours)
  double max_kl = 0;
  double max_abs = 0;  // largest |log-probability difference|
};

// `reference` and `ours`: [T, V] logits or log-probabilities (normalised here, in double).
inline Agreement agreement(const torch::Tensor& reference, const torch::Tensor& ours) {
  const torch::Tensor lr = torch::log_softmax(reference.to(torch::kDouble), -1);
  const torch::Tensor lo = torch::log_softmax(ours.to(torch::kDouble), -1);
  const torch::Tensor kl = (lr.exp() * (lr - lo)).sum(-1);
  Agreement a;
  a.positions = reference.size(0);
  a.top1 = (lr.argmax(-1) == lo.argmax(-1)).to(torch::kDouble).mean().item<double>();
  a.mean_kl = kl.mean().item<double>();
  a.max_kl = kl.max().item<double>();
  a.max_abs = (lr - lo).abs().max().item<double>();
  return a;
}

}  // namespace gemkit::test
