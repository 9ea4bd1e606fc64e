// `gemkit export torchscript`: a llama-architecture decoder as a TorchScript module file, its
// forward written as TorchScript source (no tracing: no shapes baked in) with the weights as
// parameters. Loads with torch::jit::load (C++) and torch.jit.load (Python):
//   logits = torch.jit.load("model.pt")(input_ids)      # [B, T] int64 -> [B, T, vocab] float32
// Causal attention over the whole sequence (no padding mask, no KV cache): the module is for
// scoring and for runtimes that take TorchScript; the forward matches gemkit's to float
// rounding (tested with both loaders). Written atomically; refuses to overwrite unless asked.
#pragma once
#include <string>

#include "model/transformer.h"

namespace gemkit {

// Throws gemkit::Error for models it cannot express (not a llama-family causal LM with SiLU)
// and when `path` exists without overwrite.
void export_torchscript(const Transformer& model, const std::string& path, bool overwrite);

}  // namespace gemkit
