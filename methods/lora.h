// LoRA (train.mode = "lora"): low-rank adapters on the frozen base, configured by the recipe's
// lora.* keys. The adapters are the run's added parameters, so the trainer saves them in every
// checkpoint's extra.safetensors and resume is exact. Each checkpoint also holds:
//   adapter/                   the PEFT adapter folder (export/peft_export.h) of that step
//   lora_rng.safetensors       the dropout generators' states (U8 tensors by module path), so
//                              a resumed run with lora.dropout > 0 draws the same masks
// and the end of the run writes RUN/adapter/ (the final PEFT adapter, replaced if present) and,
// with train.lora_merge_on_save, RUN/merged/ (a Hugging Face checkpoint with W + scale * B A
// folded in, fp32, with the tokenizer files of the run).
#pragma once
#include <cstdint>

#include "methods/method.h"
#include "model/lora.h"

namespace gemkit {

inline constexpr const char* kLoraRngFile = "lora_rng.safetensors";

// LoraOptions from lora.rank, lora.alpha, lora.rslora, lora.dropout, lora.target_modules,
// lora.seed (the base is frozen).
LoraOptions lora_options_from_recipe(const Recipe& recipe);

class LoraMethod : public Method {
 public:
  const char* name() const override { return "lora"; }
  void attach(Trainer& trainer, MethodContext& context) override;
  void finish(const MethodContext& context) override;
  int64_t added_parameters() const override;
  NamedParams weight_deltas() const override;

 private:
  LoraAdapters adapters_;
};

}  // namespace gemkit
