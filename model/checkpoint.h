// Hugging Face checkpoint folders: config.json, model.safetensors (or shards with
// model.safetensors.index.json) and the tokenizer files.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <set>
#include <string>
#include <vector>

#include "formats/model_config.h"
#include "model/state_dict.h"
#include "model/transformer.h"

namespace gemkit {

// Files of a checkpoint folder that belong to the tokenizer and travel with the weights.
extern const std::vector<std::string> kTokenizerFiles;

struct Pretrained {
  ModelConfig config;
  Transformer model;
  TensorDtypes dtypes;  // the stored dtype of every loaded tensor, for save_pretrained
};

struct SaveOptions {
  std::string tokenizer_source;             // folder to copy kTokenizerFiles from; empty: none
  uint64_t max_shard_bytes = 5'000'000'000;  // transformers' default "5GB"
  bool overwrite = false;                   // replace the checkpoint in a non-empty folder
  DType fallback_dtype = DType::F32;        // for float tensors with no recorded dtype
};

// Loads the weights of the checkpoint folder (single file or sharded) into any module whose
// state-dict names are the checkpoint's tensor names. See load_state_dict for strictness.
TensorDtypes load_weights(torch::nn::Module& module, const std::string& folder,
                          const std::set<std::string>& ignorable = {});

// Writes config.json (from `config`, torch_dtype set to the dtype most weights are written
// in), the weights (sharded above options.max_shard_bytes, with {"format": "pt"} metadata
// as transformers requires) and the tokenizer files. Every file is written atomically;
// config.json comes last so a folder with a config is a complete checkpoint. Refuses a
// non-empty folder unless options.overwrite; when overwriting, weight files of an earlier
// checkpoint that the new one does not use are removed.
void save_pretrained(const torch::nn::Module& module, const ModelConfig& config, const TensorDtypes& dtypes,
                     const std::string& folder, const SaveOptions& options = {});

// config.json -> gemkit::Transformer with the checkpoint's weights, moved to `device`. A path
// ending in .gguf loads a llama GGUF file instead (model/gguf_model.h).
Pretrained load_pretrained(const std::string& folder, const torch::Device& device = torch::kCPU);

inline void save_pretrained(const Transformer& model, const TensorDtypes& dtypes, const std::string& folder,
                            const SaveOptions& options = {}) {
  save_pretrained(*model, model->config(), dtypes, folder, options);
}

}  // namespace gemkit
