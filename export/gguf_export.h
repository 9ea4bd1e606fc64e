// `gemkit export gguf`: a llama-architecture decoder as a GGUF v3 file that llama.cpp runs.
//
// - Every tensor gets the type the QuantPolicy gives it (1-D tensors f32), packed by
//   formats/block_quant.h: the same arithmetic as QAT's fake quantization, so the file's
//   dequantized weights equal the fake-quantized training weights exactly.
// - q and k rows are permuted per head from Hugging Face's rotate-halves RoPE to llama.cpp's
//   interleaved pairs (docs/design/formats.md); tied embeddings write no output.weight.
// - Tokenizer metadata: a SentencePiece tokenizer.model as tokenizer.ggml.model "llama" (tokens,
//   scores, token types, special ids), or a byte-level BPE tokenizer.json as "gpt2" (tokens,
//   merges, token types, llama.cpp's pre-tokenizer name).
// - Provenance keys gemkit.*: source, policy, merged SCAR domain, whether DTR was dropped.
// The model passed in is what gets written: merge adapters / experts into it first.
#pragma once
#include <torch/torch.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "formats/quant_policy.h"
#include "model/transformer.h"

namespace gemkit {

class GgufWriter;

struct GgufExportOptions {
  QuantPolicy policy;                              // empty: every tensor f32
  std::string name;                                // general.name
  std::string tokenizer_folder;                    // holds tokenizer.model or tokenizer.json
  std::map<std::string, std::string> provenance;   // extra string keys, written as "gemkit.<key>"
  bool overwrite = false;
  // "llama" (llama.cpp), or "gemkit" for the compact format (export/compact_export.h): the
  // hyperparameter keys take this prefix.
  std::string architecture = "llama";
  // More tensors (GGUF name, f32 value) and keys, for formats built on this one.
  struct ExtraTensor {
    std::string name;
    torch::Tensor value;
    QuantType type = QuantType::F32;  // F32, F16 or Q8_0 (rows a multiple of 32; no policy)
  };
  std::vector<ExtraTensor> extra_tensors;
  std::function<void(GgufWriter&)> extra_metadata;
};

struct GgufExportedTensor {
  std::string hf_name, gguf_name;
  std::vector<int64_t> shape;  // PyTorch order
  QuantType type;
  uint64_t bytes;
};

struct GgufExportReport {
  std::vector<GgufExportedTensor> tensors;
  uint64_t file_bytes = 0;
  uint64_t f32_bytes = 0;  // the same tensors all in f32
};

// Throws gemkit::Error naming the model/tokenizer/field for unsupported models (not a llama
// causal LM, rope scaling, biases) and when `path` exists without overwrite. Atomic write.
GgufExportReport export_gguf(const Transformer& model, const GgufExportOptions& options, const std::string& path);

}  // namespace gemkit
