// Transformer blocks behind one interface, so that the Transformer can run a wrapper in place
// of block i (a token router) without knowing what it does.
#pragma once
#include <torch/torch.h>

#include <memory>

#include "formats/model_config.h"
#include "model/attention.h"
#include "model/layers.h"
#include "model/linear.h"

namespace gemkit {

// A block maps hidden states [B, T, hidden] to [B, T, hidden].
class Block : public torch::nn::Module {
 public:
  virtual torch::Tensor forward(const torch::Tensor& h, const BlockContext& ctx) = 0;
};
using BlockPtr = std::shared_ptr<Block>;

// Llama/Qwen2 pre-norm block:
//   h = h + o_proj(attention(rope(q_proj(n)), rope(k_proj(n)), v_proj(n))),  n = input_layernorm(h)
//   h = h + down_proj(silu(gate_proj(m)) * up_proj(m)),                       m = post_attention_layernorm(h)
// Module paths: input_layernorm, self_attn.{q,k,v,o}_proj, post_attention_layernorm,
// mlp.{gate,up,down}_proj.
class DecoderBlock : public Block {
 public:
  explicit DecoderBlock(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& h, const BlockContext& ctx) override;
  // The two residual updates, separately (a router may scale or skip either).
  torch::Tensor attention_update(const torch::Tensor& h, const BlockContext& ctx);
  torch::Tensor mlp_update(const torch::Tensor& h);

  RMSNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  int64_t heads_, kv_heads_, head_dim_;
  std::string act_;
};

// BERT post-LayerNorm block:
//   a = attention.output.LayerNorm(h + attention.output.dense(attention(query, key, value)))
//   h = output.LayerNorm(a + output.dense(gelu(intermediate.dense(a))))
// Module paths: attention.self.{query,key,value}, attention.output.{dense,LayerNorm},
// intermediate.dense, output.{dense,LayerNorm}.
class EncoderBlock : public Block {
 public:
  explicit EncoderBlock(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& h, const BlockContext& ctx) override;

  Linear query{nullptr}, key{nullptr}, value{nullptr}, attention_dense{nullptr};
  torch::nn::LayerNorm attention_norm{nullptr};
  Linear intermediate_dense{nullptr}, output_dense{nullptr};
  torch::nn::LayerNorm output_norm{nullptr};

 private:
  int64_t heads_, head_dim_;
  std::string act_;
};

}  // namespace gemkit
