// gemkit::Linear: y = x W^T + b, with hooks so that later parts of gemkit (LoRA adapters, SCAR
// experts, fake quantization) change what a linear layer computes without touching model code.
//
// A hook sees the input, the weight and the output, in that order of the data flow:
//   x' = hooks.transform_input(x)           e.g. activation fake-quant per 32-block
//   W' = hooks.transform_weight(W)          e.g. Q8_0/Q4_0 fake-quant of the weight
//   y  = x' W'^T + b
//   y' = hooks.adjust_output(x', y)         e.g. y + (alpha/r) B A x  (LoRA, routed experts)
// Hooks run in the order they were added. The Linear does NOT register a hook as a submodule:
// the base model's named_parameters() must stay exactly the Hugging Face names. Whoever creates
// hooks owns their parameters (registers them in its own module, under its own prefix, moves
// them to the device, and hands them to the optimizer).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

namespace gemkit {

class LinearHook {
 public:
  virtual ~LinearHook() = default;
  virtual torch::Tensor transform_input(const torch::Tensor& x) { return x; }
  virtual torch::Tensor transform_weight(const torch::Tensor& w) { return w; }
  virtual torch::Tensor adjust_output(const torch::Tensor& x, const torch::Tensor& y) { return y; }
};

class LinearImpl : public torch::nn::Module {
 public:
  // Weight [out_features, in_features] (PyTorch layout), optional bias [out_features].
  LinearImpl(int64_t in_features, int64_t out_features, bool bias);

  torch::Tensor forward(const torch::Tensor& x);
  // The plain x W^T + b, skipping every hook (a teacher pass, a merged export check).
  torch::Tensor forward_base(const torch::Tensor& x) const;

  void add_hook(std::shared_ptr<LinearHook> hook);
  void remove_hook(const std::shared_ptr<LinearHook>& hook);  // no-op when absent
  void clear_hooks() { hooks_.clear(); }
  const std::vector<std::shared_ptr<LinearHook>>& hooks() const { return hooks_; }
  // Temporarily run without hooks (e.g. the AKP teacher = the base without adapters).
  void set_hooks_enabled(bool enabled) { hooks_enabled_ = enabled; }
  bool hooks_enabled() const { return hooks_enabled_; }

  int64_t in_features() const { return in_features_; }
  int64_t out_features() const { return out_features_; }

  torch::Tensor weight;
  torch::Tensor bias;  // undefined when the layer has none

 private:
  int64_t in_features_, out_features_;
  std::vector<std::shared_ptr<LinearHook>> hooks_;
  bool hooks_enabled_ = true;
};
TORCH_MODULE(Linear);

}  // namespace gemkit
