#include "preservation/teacher.h"

#include "core/error.h"

namespace gemkit {

namespace {

using TrainingFlags = std::vector<std::pair<std::shared_ptr<torch::nn::Module>, bool>>;

// Each module's own train/eval flag, parents before children (modules() is pre-order), so
// restoring in this order puts back mixed modes exactly: Module::train() is recursive.
TrainingFlags training_flags(const Transformer& model) {
  TrainingFlags flags;
  for (const auto& m : model->modules(/*include_self=*/true)) flags.emplace_back(m, m->is_training());
  return flags;
}

void restore_training_flags(const TrainingFlags& flags) {
  for (const auto& [module, training] : flags) module->train(training);
}

// Eval mode for its lifetime, then each module's own flag back (also when forward throws).
struct EvalScope {
  explicit EvalScope(Transformer model) : flags(training_flags(model)) { model->eval(); }
  ~EvalScope() { restore_training_flags(flags); }
  TrainingFlags flags;
};

}  // namespace

BaseNetworkScope::BaseNetworkScope(Transformer model, bool keep_block_wrappers) : model_(std::move(model)) {
  if (!model_) fail("BaseNetworkScope", "no model");
  training_ = training_flags(model_);
  for (const std::string& path : model_->linear_paths()) {
    Linear linear = model_->linear(path);
    hooks_enabled_.emplace_back(linear, linear->hooks_enabled());
  }
  for (int64_t i = 0; i < model_->num_blocks() && !keep_block_wrappers; ++i)
    if (model_->block(i) != model_->base_block(i)) wrappers_.emplace_back(i, model_->block(i));
  // Everything is recorded before anything changes, so the destructor's restore is complete
  // whatever happens next.
  model_->set_linear_hooks_enabled(false);
  for (const auto& wrapper : wrappers_) model_->set_block(wrapper.first, nullptr);
  model_->eval();
}

BaseNetworkScope::~BaseNetworkScope() {
  for (auto& [linear, enabled] : hooks_enabled_) linear->set_hooks_enabled(enabled);
  for (const auto& [i, wrapper] : wrappers_) model_->set_block(i, wrapper);
  restore_training_flags(training_);
}

Teacher Teacher::same_network(Transformer model) {
  if (!model) fail("Teacher::same_network", "no model");
  return Teacher(std::move(model), true);
}

Teacher Teacher::frozen_copy(Transformer copy) {
  if (!copy) fail("Teacher::frozen_copy", "no model");
  for (auto& p : copy->parameters()) p.set_requires_grad(false);
  return Teacher(std::move(copy), false);
}

ModelOutput Teacher::forward(const torch::Tensor& input_ids, const ForwardOptions& options) {
  torch::NoGradGuard no_grad;
  if (same_network_) {
    BaseNetworkScope base(model_);
    return model_->forward(input_ids, options);
  }
  EvalScope eval(model_);
  return model_->forward(input_ids, options);
}

}  // namespace gemkit
