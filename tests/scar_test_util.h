// SCAR set-ups shared by the test programs that route through experts (test_scar, test_export,
// test_cuda): a small two-expert bank for the tiny decoder, and experts that change the output.
#pragma once
#include <torch/torch.h>

#include <string>

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

}  // namespace gemkit::test
