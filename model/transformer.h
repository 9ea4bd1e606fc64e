// The transformer: one implementation, two families (decoder: Llama/Qwen2 layout;
// encoder: BERT layout), configured by ModelConfig.
//
// Contract with the rest of gemkit (checkpoints, adapters, routing, quantization):
//  - named_parameters() are exactly the Hugging Face tensor names of the architecture
//    (model.layers.0.self_attn.q_proj.weight, bert.encoder.layer.0.attention.self.query.weight, ...),
//    so a state dict maps 1:1 onto a safetensors checkpoint. Nothing else is registered as a
//    parameter or persistent buffer (RoPE tables and masks are plain members).
//    The decoder always uses the "model." prefix of the *ForCausalLM layout, whatever the head.
//  - Every linear layer is reachable by its Hugging Face module path, and blocks can be wrapped.
//
// Hooks (see model/linear.h and model/blocks.h):
//  - linear(path) returns the gemkit::Linear at a module path ("model.layers.0.self_attn.q_proj");
//    adapters and fake quantization attach to it as LinearHooks; model code never changes.
//  - set_block(i, wrapper) makes forward run `wrapper` instead of block i. The wrapper holds the
//    original (base_block(i)) as a plain pointer, not a registered submodule; the Transformer does
//    not register the wrapper either, so named_parameters() stay the base's HF names. The wrapper's
//    owner registers its parameters under its own prefix (and moves them to the device).
#pragma once
#include <torch/torch.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include "formats/model_config.h"
#include "model/blocks.h"
#include "model/kv_cache.h"
#include "model/linear.h"

namespace gemkit {

struct ForwardOptions {
  // [B, T], 1 for a real token, 0 for padding (Hugging Face convention). Undefined: all real.
  torch::Tensor attention_mask;
  // Encoder only, [B, T]. Undefined: all zeros.
  torch::Tensor token_type_ids;
  // [B, T] int64. Undefined: decoder positions count real tokens, continuing from the cache
  // (cumsum(attention_mask) - 1 + cache positions; left padding works as in HF generate);
  // encoder positions are 0..T-1 (BERT).
  torch::Tensor position_ids;
  // [B, T] integer segment of each token for packed documents (TokenBatch::segment_ids, -1 for
  // padding): attention stays within a segment (and is causal in the decoder), and when
  // position_ids is undefined positions restart at 0 in each segment, so a packed row gives
  // each document the result it would get alone. Not with a KV cache. Undefined: one segment.
  torch::Tensor segment_ids;
  // Decoder only: attend over the cache and append these tokens to it.
  KVCache* cache = nullptr;
  // CausalLM: compute logits for the last position only ([B, 1, V]); generation needs no more.
  bool last_token_logits_only = false;
  // CausalLM: no logits at all (ModelOutput::logits undefined); the caller takes the loss from
  // `hidden` with chunked_lm_loss, which never holds [B, T, vocab] logits.
  bool skip_logits = false;
};

struct ModelOutput {
  // CausalLM, MaskedLM: [B, T, vocab]; SequenceClassification: [B, num_labels]; None: undefined.
  torch::Tensor logits;
  // [B, T, hidden]: the final hidden states (after model.norm in the decoder).
  torch::Tensor hidden;
};

class TransformerImpl : public torch::nn::Module {
 public:
  // Validates the config (throws gemkit::Error naming the field) and builds a randomly
  // initialised model (Hugging Face init: normal(0, 0.02), norms at 1, biases at 0) on the CPU.
  explicit TransformerImpl(const ModelConfig& config);
  const ModelConfig& config() const { return config_; }

  // Tensor names a Hugging Face checkpoint may hold that this model deliberately does not
  // load (for example a tied output matrix saved alongside the embeddings, or BERT's
  // position_ids buffer). Everything else unexpected is an error.
  std::set<std::string> ignorable_checkpoint_tensors() const;

  // input_ids [B, T] int64.
  ModelOutput forward(const torch::Tensor& input_ids, const ForwardOptions& options = {});
  // The head's training loss: causal LM (shifted), masked LM, or classification; see model/loss.h.
  torch::Tensor loss(const ModelOutput& output, const torch::Tensor& labels) const;
  // The causal LM loss from the final hidden states in chunks of `chunk_tokens` positions
  // (model/chunked_loss.h): equal to loss() on the logits, without them. Only where
  // chunked_lm_loss_supported(): a CausalLM whose output layer has no hook that changes its
  // output (a LoRA adapter on lm_head); input and weight hooks (fake quantization) apply.
  bool chunked_lm_loss_supported() const;
  // CausalLM: the output layer on final hidden states [..., H] -> logits [..., V], as forward()
  // applies it (lm_head with its hooks, or the tied table through the embedding hook); with
  // ForwardOptions::skip_logits, evaluation takes logits of the positions it scores, in chunks.
  torch::Tensor output_logits(const torch::Tensor& hidden);
  torch::Tensor chunked_lm_loss(const torch::Tensor& hidden, const torch::Tensor& labels, int64_t chunk_tokens) const;

  // --- hooks ---
  // Module paths of every linear layer, in registration order.
  const std::vector<std::string>& linear_paths() const { return linear_paths_; }
  bool has_linear(const std::string& path) const { return linears_.count(path) > 0; }
  Linear linear(const std::string& path) const;  // throws gemkit::Error for an unknown path
  // Turns every Linear's hooks (and the embedding hook) on or off (a teacher pass through the
  // plain base model).
  void set_linear_hooks_enabled(bool enabled);
  // A hook on the decoder's token embedding table (quantization-aware training): its
  // transform_weight applies to the table for the lookup and for a tied output head, its
  // transform_input to the tied head's input. nullptr removes it.
  void set_embedding_hook(std::shared_ptr<LinearHook> hook) { embedding_hook_ = std::move(hook); }
  const std::shared_ptr<LinearHook>& embedding_hook() const { return embedding_hook_; }

  int64_t num_blocks() const { return static_cast<int64_t>(base_blocks_.size()); }
  BlockPtr block(int64_t i) const;       // what forward runs: the wrapper when one is set
  BlockPtr base_block(int64_t i) const;  // the registered block (owner of the HF parameters)
  void set_block(int64_t i, BlockPtr wrapper);  // nullptr restores the base block

  // --- incremental decoding ---
  KVCache make_cache() const { return KVCache(num_blocks()); }
  torch::Device device() const;

 private:
  std::shared_ptr<LinearHook> embedding_hook_;
  bool embedding_hook_enabled_ = true;
  ModelOutput forward_decoder(const torch::Tensor& input_ids, const ForwardOptions& options);
  ModelOutput forward_encoder(const torch::Tensor& input_ids, const ForwardOptions& options);
  torch::Tensor run_blocks(torch::Tensor h, const BlockContext& context, KVCache* cache);
  void index_linears();

  ModelConfig config_;
  // Decoder.
  torch::nn::Embedding embed_tokens_{nullptr};
  RMSNorm final_norm_{nullptr};
  Linear lm_head_{nullptr};  // untied CausalLM only
  Linear score_{nullptr};    // SequenceClassification
  Rope rope_;
  // Encoder.
  torch::nn::Embedding word_embeddings_{nullptr}, position_embeddings_{nullptr},
      token_type_embeddings_{nullptr};
  torch::nn::LayerNorm embeddings_norm_{nullptr};
  Linear mlm_transform_{nullptr};
  torch::nn::LayerNorm mlm_norm_{nullptr};
  torch::Tensor mlm_bias_;
  Linear pooler_{nullptr}, classifier_{nullptr};
  // Both.
  std::vector<BlockPtr> base_blocks_, active_blocks_;
  std::vector<std::string> linear_paths_;
  std::map<std::string, Linear> linears_;
};
TORCH_MODULE(Transformer);

// Checks a config for the transformer; throws gemkit::Error "ModelConfig.<field>: ...".
void validate_config(const ModelConfig& config);

}  // namespace gemkit
