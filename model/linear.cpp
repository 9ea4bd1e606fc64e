#include "model/linear.h"

#include <algorithm>

namespace gemkit {

LinearImpl::LinearImpl(int64_t in_features, int64_t out_features, bool bias)
    : in_features_(in_features), out_features_(out_features) {
  // Hugging Face's default init for these architectures (initializer_range 0.02); checkpoints
  // overwrite it, and a freshly built model is trainable from it.
  weight = register_parameter("weight", torch::randn({out_features, in_features}) * 0.02);
  if (bias) this->bias = register_parameter("bias", torch::zeros({out_features}));
}

torch::Tensor LinearImpl::forward_base(const torch::Tensor& x) const {
  return torch::nn::functional::linear(x, weight, bias);
}

torch::Tensor LinearImpl::forward(const torch::Tensor& x) {
  if (!hooks_enabled_ || hooks_.empty()) return forward_base(x);
  torch::Tensor in = x;
  for (auto& h : hooks_) in = h->transform_input(in);
  torch::Tensor w = weight;
  for (auto& h : hooks_) w = h->transform_weight(w);
  torch::Tensor y = torch::nn::functional::linear(in, w, bias);
  for (auto& h : hooks_) y = h->adjust_output(in, y);
  return y;
}

void LinearImpl::add_hook(std::shared_ptr<LinearHook> hook) { hooks_.push_back(std::move(hook)); }

void LinearImpl::remove_hook(const std::shared_ptr<LinearHook>& hook) {
  hooks_.erase(std::remove(hooks_.begin(), hooks_.end(), hook), hooks_.end());
}

}  // namespace gemkit
