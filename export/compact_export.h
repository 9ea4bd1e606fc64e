// `gemkit export compact`: gemkit's own compact format for its edge runtime (runtime/model.h
// documents the layout): a GGUF v3 file with architecture "gemkit", the base weights typed by
// the quantization policy exactly as `export gguf` stores them, the tokenizer, and the token
// router of every routed block (f32), so that gemkit-run skips blocks for real; SCAR's routers
// and experts (f32) unless `domain` names one expert to merge in float (then the file is dense
// in SCAR's sense).
// Standard GGUF tools list the file; llama.cpp refuses its architecture, by design.
#pragma once
#include <string>

#include "export/gguf_export.h"

namespace gemkit {

GgufExportReport export_compact(const std::string& checkpoint, const std::string& domain, const QuantPolicy& policy,
                                const std::string& path, bool overwrite);

}  // namespace gemkit
