// GEM routing in `gemkit train`: the recipe's dtr.* and scar.* keys, and what the trainer gets
// when either is enabled.
//
// The trainer then trains the modules' tensors (extra.safetensors: exact resume), adds their
// losses as weighted terms (metrics "loss/dtr_aux", "loss/scar_balance", "loss/scar_z",
// "loss/scar_supervision"), anneals the DTR capacity every step, logs the routing figures of
// every step (GemModules::metrics, plus "scar/domain_accuracy"), and writes gem.json into every
// checkpoint so that the checkpoint can be evaluated and run as a routed model.
#pragma once
#include <cstdint>
#include <memory>
#include <set>
#include <string>

#include "methods/method.h"
#include "routing/gem_modules.h"

namespace gemkit {

GemConfig gem_config_from_recipe(const Recipe& recipe);

class GemMethod : public Method {
 public:
  const char* name() const override { return "gem"; }
  void attach(Trainer& trainer, MethodContext& context) override;
  int64_t added_parameters() const override;  // the trainable ones (frozen experts left out)
  NamedParams weight_deltas() const override;
  bool routes_general_tokens() const override;
  torch::Tensor general_probability(int64_t rows, int64_t seq_len) const override;

 private:
  std::unique_ptr<GemModules> gem_;
  std::set<std::string> frozen_;  // names of the frozen experts' tensors (scar.frozen_experts)
};

}  // namespace gemkit
