// `gemkit export compact`: gemkit's own compact format for its edge runtime (runtime/model.h
// documents the layout): a GGUF v3 file with architecture "gemkit", the base weights typed by
// the quantization policy exactly as `export gguf` stores them, the tokenizer, and the token
// router of every routed block (f32), so that gemkit-run skips blocks for real; SCAR's routers
// (f32) and experts unless `domain` names one expert to merge in float (then the file is dense
// in SCAR's sense). The experts' adapters are stored as `expert_type`: f32, f16, or q8_0 (the default; then
// each tensor whose rows are a multiple of 32 long is Q8_0 and the others f16).
// Standard GGUF tools list the file; llama.cpp refuses its architecture, by design.
#pragma once
#include <optional>
#include <string>

#include "export/gguf_export.h"

namespace gemkit {

struct CompactExportOptions {
  std::string domain;                        // SCAR: merge this expert instead (empty: keep them routed)
  QuantPolicy policy;                        // the base weights' types
  QuantType expert_type = QuantType::Q8_0;   // SCAR experts' adapters (see above)
  std::optional<double> scar_general_bias;   // SCAR: the router's general bias to ship (default: the checkpoint's)
  bool overwrite = false;
};

GgufExportReport export_compact(const std::string& checkpoint, const CompactExportOptions& options, const std::string& path);

}  // namespace gemkit
