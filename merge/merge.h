// Weight-space merging of checkpoints that adapt one base model (docs/design/gem-method.md
// section 7):
//   WiSE-FT          theta = (1 - a) theta0 + a theta_ft, one fine-tuned model, a in [0, 1]
//   task arithmetic  theta = theta0 + lambda * sum_i (theta_i - theta0), any number of models
// (WiSE-FT is task arithmetic with one model and lambda = a.) Arithmetic is in fp32 whatever the
// stored dtypes; the result is stored in the first model's dtypes with its config and tokenizer.
#pragma once
#include <string>
#include <vector>

namespace gemkit {

struct MergeOptions {
  std::string base;                 // theta0: a checkpoint folder (models:NAME resolved by the caller)
  std::vector<std::string> models;  // fine-tuned checkpoint folders of the same base
  double scale = 1.0;               // a (WiSE-FT) or lambda (task arithmetic)
  std::string out;                  // the merged checkpoint folder
  bool force = false;               // replace an existing `out`
};

// Writes the merged checkpoint into options.out: built in a temporary folder beside it and
// renamed into place, so `out` is either absent, the old folder or the complete new one.
// Refuses (gemkit::Error naming the folder and what differs) checkpoints whose architecture
// differs from the base's, tensors missing or of another shape, checkpoints with added modules
// (extra.safetensors: adapters, routers; merge LoRA first), and an existing `out` without force.
void merge_checkpoints(const MergeOptions& options);

}  // namespace gemkit
