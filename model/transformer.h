// The transformer: one implementation, two families (decoder: Llama/Qwen2 layout;
// encoder: BERT layout), configured by ModelConfig.
//
// Contract with the rest of gemkit (checkpoints, adapters, routing, quantization):
//  - named_parameters() are exactly the Hugging Face tensor names of the architecture
//    (model.layers.0.self_attn.q_proj.weight, bert.encoder.layer.0.attention.self.query.weight, ...),
//    so a state dict maps 1:1 onto a safetensors checkpoint. Nothing else is registered as a
//    parameter or persistent buffer (RoPE tables and masks are plain members).
//  - Every linear layer is reachable by its Hugging Face module path, and blocks can be wrapped.
#pragma once
#include <torch/torch.h>

#include <set>
#include <string>

#include "model/model_config.h"

namespace gemkit {

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelConfig& config);
  const ModelConfig& config() const { return config_; }

  // Tensor names a Hugging Face checkpoint may hold that this model deliberately does not
  // load (for example a tied output matrix saved alongside the embeddings, or BERT's
  // position_ids buffer). Everything else unexpected is an error.
  std::set<std::string> ignorable_checkpoint_tensors() const;

 private:
  ModelConfig config_;
};
TORCH_MODULE(Transformer);

}  // namespace gemkit
