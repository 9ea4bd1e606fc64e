// SCAR set-ups shared by the test programs that route through experts (test_scar, test_export,
// test_cuda, test_eval): a small two-expert bank for the tiny decoder, experts that change the
// output, and GEM (SCAR + DTR) routing that varies from token to token.
#pragma once
#include <torch/torch.h>

#include <string>

#include "routing/gem_modules.h"
#include "routing/scar.h"

namespace gemkit::test {

// Experts "law" and "finance" beside the general path, rank 4 (alpha 8), router dimension 16;
// everything else SCAR's defaults.
inline ScarOptions two_scar_experts() {
  ScarOptions o;
  o.experts = {"law", "finance"};
  o.rank = 4;
  o.alpha = 8;
  o.router.router_dim = 16;
  return o;
}

// Every expert's B drawn from N(0, std) (B = 0 at start would make every expert a no-op).
inline void randomise_experts(Scar& scar, double std = 0.3) {
  torch::NoGradGuard no_grad;
  for (auto& [name, t] : scar.named_parameters())
    if (name.find("lora_B") != std::string::npos) t.normal_(0.0, std);
}

// SCAR (two_scar_experts) with the token router on block 1 of the 3-block tiny decoder, gates
// mid-range (bias 0): in training the capacity decides.
inline GemConfig scar_and_dtr_on_block_1() {
  GemConfig g;
  g.scar = true;
  g.scar_options = two_scar_experts();
  g.dtr = true;
  g.dtr_options.initial_bias = 0.0;
  g.dtr_blocks = {1};
  return g;
}

// Experts randomised and token-router weights from N(0, 1): gates on both sides of the
// threshold, some tokens on two experts.
inline void randomise_routing(GemModules& gem) {
  randomise_experts(*gem.scar());
  torch::NoGradGuard no_grad;
  if (TokenRouters* dtr = gem.dtr())
    for (auto& r : (*dtr)->routers()) r->weight.normal_(0.0, 1.0);
}

}  // namespace gemkit::test
