// `gemkit export compact`: gemkit's own compact format for its edge runtime (runtime/model.h
// documents the layout): a GGUF v3 file with architecture "gemkit", the base weights typed by
// the quantization policy exactly as `export gguf` stores them, the tokenizer, and the token
// router of every routed block (f32), so that gemkit-run skips blocks for real. A SCAR expert
// is merged in float for one chosen domain (the runtime does not execute SCAR routing yet).
// Standard GGUF tools list the file; llama.cpp refuses its architecture, by design.
#pragma once
#include <string>

#include "export/gguf_export.h"

namespace gemkit {

GgufExportReport export_compact(const std::string& checkpoint, const std::string& domain, const QuantPolicy& policy,
                                const std::string& path, bool overwrite);

}  // namespace gemkit
