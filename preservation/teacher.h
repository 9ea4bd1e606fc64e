// The distillation teacher: the model as it was before adaptation, frozen
// (docs/design/gem-method.md §4).
//
// Two ways to have it:
//  - same_network: when only adapters and routers train, the base weights never change, so the
//    teacher is the very same network run without what adaptation added: every Linear hook
//    (LoRA, experts) switched off and every block wrapper (token routers) taken out. No second
//    copy of the weights is held. BaseNetworkScope does the switching and always undoes it.
//  - frozen_copy: for full fine-tuning the base weights move, so the teacher is a separate model
//    (for example the same checkpoint loaded a second time), with requires_grad=false.
//
// Either way the teacher runs under torch::NoGradGuard and in eval mode (no dropout), and the
// modules' previous train/eval flags are restored afterwards.
//
//   Teacher teacher = Teacher::same_network(model);        // LoRA / routers
//   torch::Tensor target = teacher.forward(ids, options).logits;
//
// Weights merged into the base (LoraAdapters::merge) cannot be switched off: keep adapters
// unmerged while a same_network teacher is in use.
#pragma once
#include <torch/torch.h>

#include <memory>
#include <utility>
#include <vector>

#include "model/transformer.h"

namespace gemkit {

// While alive, `model` computes the plain base network: Linear hooks off, block wrappers out,
// every module in eval mode. The destructor puts back exactly what was there (each Linear's
// own hooks flag, each wrapper, each module's train/eval flag), also when the forward pass
// in between throws. Not copyable. With keep_block_wrappers, wrappers (DTR's token routing)
// stay: the routed network without its adapters and experts.
class BaseNetworkScope {
 public:
  explicit BaseNetworkScope(Transformer model, bool keep_block_wrappers = false);
  ~BaseNetworkScope();
  BaseNetworkScope(const BaseNetworkScope&) = delete;
  BaseNetworkScope& operator=(const BaseNetworkScope&) = delete;

 private:
  Transformer model_;
  std::vector<std::pair<Linear, bool>> hooks_enabled_;
  std::vector<std::pair<int64_t, BlockPtr>> wrappers_;
  std::vector<std::pair<std::shared_ptr<torch::nn::Module>, bool>> training_;
};

class Teacher {
 public:
  // The model itself, run as its base network (see above). Throws gemkit::Error for a null model.
  static Teacher same_network(Transformer model);
  // A separate copy of the pre-adaptation model; its parameters are set to requires_grad=false.
  // It runs as it is (hooks and wrappers it may carry included). Throws for a null model.
  static Teacher frozen_copy(Transformer copy);

  // The teacher's output for a batch (no graph: nothing flows back into the teacher).
  ModelOutput forward(const torch::Tensor& input_ids, const ForwardOptions& options = {});

  bool shares_network() const { return same_network_; }
  const Transformer& model() const { return model_; }

 private:
  Teacher(Transformer model, bool same_network) : model_(std::move(model)), same_network_(same_network) {}
  Transformer model_;
  bool same_network_;
};

}  // namespace gemkit
