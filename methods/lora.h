// LoRA mode of `gemkit train` (train.mode = "lora"): the recipe's lora.* keys, and what each
// checkpoint and the end of the run write besides the trainer's own files.
//
//   LoraAdapters adapters = LoraAdapters::attach(model, lora_options_from_recipe(recipe));
//   trainer.add_parameters(adapters.named_parameters());   // extra.safetensors: exact resume
//   add_lora_checkpointing(trainer, adapters, model, base);  // step-N/adapter/, dropout RNG
//   ... trainer.run(); write_final_lora(...)
//
// Each checkpoint holds, besides the frozen base (model.safetensors, unchanged) and the adapter
// weights in extra.safetensors (which resume reads):
//   adapter/                   the PEFT adapter folder (export/peft_export.h) of that step
//   lora_rng.safetensors       the dropout generators' states (U8 tensors by module path), so
//                              a resumed run with lora.dropout > 0 draws the same masks
#pragma once
#include <string>

#include "model/lora.h"
#include "train/recipe.h"
#include "train/trainer.h"

namespace gemkit {

inline constexpr const char* kLoraRngFile = "lora_rng.safetensors";

// LoraOptions from lora.rank, lora.alpha, lora.rslora, lora.dropout, lora.target_modules,
// lora.seed (the base is frozen).
LoraOptions lora_options_from_recipe(const Recipe& recipe);

// Registers the checkpoint hook described above. `base_model` is written as the adapter's
// base_model_name_or_path. `adapters` and `model` must outlive the trainer's checkpoints.
void add_lora_checkpointing(Trainer& trainer, LoraAdapters& adapters, const Transformer& model,
                            const std::string& base_model);

// End of the run: RUN/adapter/ (the final PEFT adapter, replaced if present) and, when `merge`,
// RUN/merged/ (a Hugging Face checkpoint with W + scale * B A folded in, fp32, with the
// tokenizer files of `tokenizer_source`). The adapters are unmerged again afterwards.
void write_final_lora(LoraAdapters& adapters, Transformer& model, const std::string& run_dir,
                      const std::string& base_model, const std::string& tokenizer_source, bool merge);

}  // namespace gemkit
