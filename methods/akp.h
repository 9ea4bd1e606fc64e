// Adaptive knowledge preservation in `gemkit train` (docs/design/gem-method.md §4): the recipe's
// akp.* keys, and the loss terms, hooks and checkpoint state they add to a Trainer.
//
//   loss = task + lambda_kd * s * L_KD + lambda_ewc * s * L_EWC + lambda_l2sp * L_L2SP + router losses
//
//  - L_KD ("kd"): distillation from the model before fine-tuning. Teacher: the same network with
//    adapters, experts and token routers switched off when the base is frozen (train.mode
//    "frozen" / "lora": no second copy in memory); a frozen copy of model.path in full mode.
//    Per-token weights w_i: 1 on replay rows (rows whose domain is "general", mixed in through
//    train.data / train.data_weights); on domain rows by akp.kd_domain_weight: "router" = SCAR's
//    probability that the token is general, "all" = 1, "none" = 0. Only rows with a non-zero
//    weight run through the teacher.
//  - L_EWC ("ewc"): 1/2 sum F (theta - theta*)^2 with the diagonal true Fisher of the base on
//    akp.fisher_data, computed once and cached under akp.fisher_cache. L_L2SP ("l2sp"): F = 1.
//    With a frozen base the penalty applies to the effective weight change of the adapters
//    (LoRA: scale B A; SCAR: each domain expert's scale B_e A_e).
//    Online EWC for sequential domains (full mode): a run with akp.ewc_weight > 0 ends by writing
//    RUN/ewc_anchor.safetensors: F <- gamma * F + F_new, F_new the Fisher of the adapted model on
//    this stage's domain (the first train.data shard), theta* <- the adapted weights. The next
//    stage starts from this run's checkpoint with akp.ewc_previous = that file.
//  - The forgetting budget (akp.budget > 0): every akp.budget_every steps the loss on a fixed
//    held-out general set (akp.budget_data) is compared with the base's; s (the multiplier of
//    lambda_kd and lambda_ewc) is raised when the rise exceeds the budget and lowered when well
//    under it. Logged as "akp/scale", "akp/rise", "akp/general_loss", "akp/lambda_kd",
//    "akp/lambda_ewc"; saved in each checkpoint (akp_state.json) for exact resume.
#pragma once
#include <memory>
#include <string>

#include "methods/method.h"

namespace gemkit {

inline constexpr const char* kAkpStateFile = "akp_state.json";
inline constexpr const char* kEwcAnchorFile = "ewc_anchor.safetensors";

// True when any akp.* term is enabled (the budget scales the terms, so it needs one).
bool akp_enabled(const Recipe& recipe);

struct AkpState;

// Attaches after the methods whose adapters it protects (LoRA, GEM): with a frozen base the
// penalties look at their weight_deltas(), and akp.kd_domain_weight = "router" asks them for
// general_probability().
class AkpMethod : public Method {
 public:
  AkpMethod();
  ~AkpMethod() override;
  const char* name() const override { return "akp"; }
  void attach(Trainer& trainer, MethodContext& context) override;
  // Online EWC (full mode, akp.ewc_weight > 0): the consolidated anchor for the next stage.
  void finish(const MethodContext& context) override;

 private:
  std::unique_ptr<AkpState> state_;
};

}  // namespace gemkit
