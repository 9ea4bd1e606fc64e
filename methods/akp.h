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

#include "data/loader.h"
#include "routing/gem_modules.h"
#include "methods/gem.h"
#include "model/lora.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace gemkit {

inline constexpr const char* kAkpStateFile = "akp_state.json";
inline constexpr const char* kEwcAnchorFile = "ewc_anchor.safetensors";

struct AkpInputs {
  Transformer model{nullptr};
  TrainMode mode = TrainMode::Full;
  GemModules* gem = nullptr;         // may be null
  LoraAdapters* lora = nullptr;      // may be null (or without layers)
  SourceDomains domains;             // of train.data
  LoaderOptions loader;              // how held-out shards are cut into batches
};

// True when any akp.* term or the budget is enabled.
bool akp_enabled(const Recipe& recipe);

// What add_akp_training set up: it owns the teacher, the anchors and the controller, and must
// outlive the trainer's run.
class AkpRun {
 public:
  virtual ~AkpRun() = default;
  // After the last step (rank 0): online EWC's consolidated anchor for the next stage.
  virtual void finish(const std::string& run_dir) = 0;
};

// Adds the enabled terms and hooks.
std::shared_ptr<AkpRun> add_akp_training(Trainer& trainer, const Recipe& recipe, const AkpInputs& inputs);

}  // namespace gemkit
