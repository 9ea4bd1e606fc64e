// PEFT LoRA adapter folders (Hugging Face peft's save_pretrained / from_pretrained layout):
//   adapter_config.json         peft_type "LORA", r, lora_alpha, lora_dropout, target_modules,
//                               use_rslora, base_model_name_or_path, bias "none", ...
//   adapter_model.safetensors   base_model.model.<module path>.lora_A.weight [r, in] and
//                               .lora_B.weight [out, r], float32
// The effective weight of each adapted layer is W + scale * B A, scale = lora_alpha / r
// (lora_alpha / sqrt(r) with use_rslora). See docs/design/formats.md, PEFT section.
#pragma once
#include <string>
#include <vector>

#include "model/lora.h"

namespace gemkit {

inline constexpr const char* kPeftConfigName = "adapter_config.json";
inline constexpr const char* kPeftWeightsName = "adapter_model.safetensors";

struct PeftExportOptions {
  // Written as base_model_name_or_path: the base checkpoint folder or hub id.
  std::string base_model_name_or_path;
  // PEFT task type; empty: from the model's head (CAUSAL_LM, SEQ_CLS; null for masked LM and
  // headless models, which PEFT has no task type for).
  std::string task_type;
  // Replace adapter files already in the folder (other files are left alone).
  bool overwrite = false;
};

// Writes the adapter folder (created when missing); both files are written atomically, the
// config last, so a folder with a config is complete. The adapters must not be merged (the
// merged delta lives in the base weights, the folder would be inconsistent with them):
// unmerge() first. target_modules is written as given when every pattern is a plain module
// name; patterns with "re:" or "all-linear" are written as the explicit list of adapted module
// paths (PEFT matches a list entry equal to the full path).
void export_peft_adapter(const LoraAdapters& adapters, const Transformer& model, const std::string& folder,
                         const PeftExportOptions& options = {});

// The same folder from explicit tensors (PEFT names "base_model.model.<path>.lora_A.weight" /
// ".lora_B.weight") and options: how adapters that are not a LoraAdapters set (SCAR's per-domain
// experts) are written. Empty lo.target_modules: module_paths are written.
void write_peft_folder(const std::vector<std::pair<std::string, torch::Tensor>>& tensors, const LoraOptions& lo,
                       const std::vector<std::string>& module_paths, const ModelConfig& model_config,
                       const std::string& folder, const PeftExportOptions& options);

// adapter_config.json -> LoraOptions (rank, alpha, dropout, rsLoRA, target modules; a string
// target_modules becomes one "re:" pattern, as PEFT full-matches it). Rejects what gemkit's
// LoRA cannot represent (peft_type other than LORA, bias other than "none",
// fan_in_fan_out, DoRA, rank_pattern / alpha_pattern, layers_to_transform, modules_to_save)
// with a gemkit::Error naming the file and key.
LoraOptions read_peft_config(const std::string& folder);

// Reads an adapter folder onto `model`: attaches adapters per its config (freezing the base
// unless freeze_base is false) and loads the weights. Every name and shape is checked
// against the model before anything is copied; on error the model is left without adapters.
LoraAdapters load_peft_adapter(Transformer& model, const std::string& folder, bool freeze_base = true);

}  // namespace gemkit
