// `gemkit export compact`: gemkit's own compact format for its edge runtime (runtime/model.h
// documents the layout): a GGUF v3 file with architecture "gemkit", the base weights typed by
// the quantization policy exactly as `export gguf` stores them, the tokenizer, and the token
// router of every routed block (f32), so that gemkit-run skips blocks for real; SCAR's routers
// (f32) and experts unless `domain` names one expert to merge in float (then the file is dense
// in SCAR's sense). The experts' adapters are stored as `expert_type`: f32, f16, or q8_0 (then
// each tensor whose rows are a multiple of 32 long is Q8_0 and the others f16).
// Standard GGUF tools list the file; llama.cpp refuses its architecture, by design.
#pragma once
#include <string>

#include "export/gguf_export.h"

namespace gemkit {

GgufExportReport export_compact(const std::string& checkpoint, const std::string& domain, const QuantPolicy& policy,
                                const std::string& path, bool overwrite, QuantType expert_type = QuantType::F16);

}  // namespace gemkit
