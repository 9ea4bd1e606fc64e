// Weight-space merging of checkpoints that adapt one base model (docs/design/gem-method.md
// section 7), from the task vectors tau_i = theta_i - theta0:
//   WiSE-FT          theta = (1 - a) theta0 + a theta_ft, one fine-tuned model, a in [0, 1]
//   task arithmetic  theta = theta0 + lambda * sum_i tau_i, any number of models
//   TIES             theta = theta0 + lambda * ties(tau_1..tau_n): trim, elect sign, disjoint mean
//                    (Yadav et al. 2023; ties_delta below)
// (WiSE-FT is task arithmetic with one model and lambda = a.) Arithmetic is in fp32 whatever the
// stored dtypes; the result is stored in the first model's dtypes with its config and tokenizer.
#pragma once
#include <torch/torch.h>

#include <string>
#include <vector>

namespace gemkit {

enum class MergeMethod { TaskArithmetic, Ties };

struct MergeOptions {
  std::string base;                 // theta0: a checkpoint folder (models:NAME resolved by the caller)
  std::vector<std::string> models;  // fine-tuned checkpoint folders of the same base
  double scale = 1.0;               // a (WiSE-FT) or lambda (task arithmetic)
  std::string out;                  // the merged checkpoint folder
  bool force = false;               // replace an existing `out`
  MergeMethod method = MergeMethod::TaskArithmetic;
  double density = 0.2;             // TIES: the share of each task vector's entries kept, per tensor
};

// TIES on one tensor's task vectors (same shape): 1. trim: in each, keep the floor(density x
// numel) entries (at least one) with the largest magnitude (ties at the threshold kept), zero the rest; 2. elect, per
// entry, the sign of the sum of the trimmed values; 3. average the trimmed values that have the
// elected sign (entries where none has it: 0). Returns the merged task vector.
torch::Tensor ties_delta(const std::vector<torch::Tensor>& deltas, double density);

// Writes the merged checkpoint into options.out: built in a temporary folder beside it and
// renamed into place, so `out` is either absent, the old folder or the complete new one.
// Refuses (gemkit::Error naming the folder and what differs) checkpoints whose architecture
// differs from the base's, tensors missing or of another shape, checkpoints with added modules
// (extra.safetensors: adapters, routers; merge LoRA first), and an existing `out` without force.
void merge_checkpoints(const MergeOptions& options);

}  // namespace gemkit
