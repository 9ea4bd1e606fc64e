// `gemkit export peft`: each SCAR domain expert of a routed checkpoint as its own PEFT LoRA
// adapter folder (FOLDER/<domain>/adapter_config.json + adapter_model.safetensors), loadable
// by Hugging Face peft on the base model (and by `gemkit` itself, export/peft_export.h). An
// expert is exactly a LoRA adapter: the same A [r, in], B [out, r] and alpha / r scale, applied
// to every token (the router's choice is what PEFT cannot express: one adapter per domain).
#pragma once
#include <string>
#include <vector>

namespace gemkit {

// Returns the folders written. Throws gemkit::Error naming the checkpoint when it has no SCAR
// experts, or a folder that already holds an adapter unless overwrite.
std::vector<std::string> export_scar_experts_as_peft(const std::string& checkpoint, const std::string& folder,
                                                     const std::string& base_model_name, bool overwrite);

}  // namespace gemkit
