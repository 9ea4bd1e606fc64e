// AdamW with two parameter groups: weight decay on matrices, none on norms, biases and
// embeddings (decaying a norm's gain towards 0 or an embedding row that is rarely seen only
// hurts). Parameters are named, so optimizer state is saved and restored by name, independent
// of registration order.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "model/state_dict.h"  // NamedParams

namespace gemkit {

struct OptimizerOptions {
  double lr = 3e-4;  // the schedule overwrites it every step
  double beta1 = 0.9, beta2 = 0.95, eps = 1e-8;
  double weight_decay = 0.1;
  // A parameter whose name contains any of these substrings gets no weight decay; neither does
  // any parameter with fewer than 2 dimensions (biases, norm gains).
  std::vector<std::string> no_decay = default_no_decay();
  static std::vector<std::string> default_no_decay() {
    return {"norm", "bias", "embed", "LayerNorm"};
  }
  // MoFO (momentum-filtered optimizer, Chen et al. 2024; train.mofo_fraction): when in (0, 1),
  // each step moves only this share of every parameter tensor's entries, those with the largest
  // |first moment| after the step's update; the moments of all entries update as in AdamW.
  // 1: plain AdamW.
  double mofo_fraction = 1.0;
};

bool param_decays(const std::string& name, const torch::Tensor& p, const std::vector<std::string>& no_decay);

// The optimizer and the names of its parameters, group 0 decaying, group 1 not.
struct Optimizer {
  std::unique_ptr<torch::optim::AdamW> adamw;
  NamedParams decay, no_decay;
  double mofo_fraction = 1.0;

  void set_lr(double lr);
  // One AdamW step, filtered by MoFO when mofo_fraction < 1 (entries left out keep their values).
  void step();
  // Per parameter: exp_avg, exp_avg_sq as "<name>.exp_avg", "<name>.exp_avg_sq" tensors
  // (fp32 safetensors: bit-exact), and each AdamW step count in `steps` (JSON side).
  void save_state(const std::string& safetensors_path, std::map<std::string, int64_t>& steps) const;
  // Restores what save_state wrote; a parameter missing from the file is an error naming it.
  void load_state(const std::string& safetensors_path, const std::map<std::string, int64_t>& steps);
};

// Parameters that require grad are split into the two groups; frozen ones are left out.
Optimizer make_optimizer(const NamedParams& params, const OptimizerOptions& options);

}  // namespace gemkit
