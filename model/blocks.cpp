#include "model/blocks.h"

namespace gemkit {

// [B, T, heads * d] -> [B, heads, T, d]
static torch::Tensor split_heads(const torch::Tensor& x, int64_t heads, int64_t d) {
  return x.view({x.size(0), x.size(1), heads, d}).transpose(1, 2);
}

DecoderBlock::DecoderBlock(const ModelConfig& c)
    : heads_(c.num_attention_heads),
      kv_heads_(c.num_key_value_heads),
      head_dim_(c.head_dim()),
      act_(c.hidden_act) {
  const int64_t H = c.hidden_size, kv_dim = kv_heads_ * head_dim_;
  input_layernorm = register_module("input_layernorm", RMSNorm(H, c.rms_norm_eps));
  auto attn = register_module("self_attn", Scope());
  q_proj = attn->register_module("q_proj", Linear(H, heads_ * head_dim_, c.attention_bias));
  k_proj = attn->register_module("k_proj", Linear(H, kv_dim, c.attention_bias));
  v_proj = attn->register_module("v_proj", Linear(H, kv_dim, c.attention_bias));
  o_proj = attn->register_module("o_proj", Linear(heads_ * head_dim_, H, false));
  post_attention_layernorm = register_module("post_attention_layernorm", RMSNorm(H, c.rms_norm_eps));
  auto mlp = register_module("mlp", Scope());
  gate_proj = mlp->register_module("gate_proj", Linear(H, c.intermediate_size, false));
  up_proj = mlp->register_module("up_proj", Linear(H, c.intermediate_size, false));
  down_proj = mlp->register_module("down_proj", Linear(c.intermediate_size, H, false));
}

torch::Tensor DecoderBlock::attention_update(const torch::Tensor& h, const BlockContext& ctx) {
  auto n = input_layernorm(h);
  auto q = apply_rope(split_heads(q_proj(n), heads_, head_dim_), ctx.cos, ctx.sin);
  auto k = apply_rope(split_heads(k_proj(n), kv_heads_, head_dim_), ctx.cos, ctx.sin);
  auto v = split_heads(v_proj(n), kv_heads_, head_dim_);
  return o_proj(multi_head_attention(q, k, v, ctx));
}

torch::Tensor DecoderBlock::mlp_update(const torch::Tensor& h) {
  auto m = post_attention_layernorm(h);
  return down_proj(activation(act_, gate_proj(m)) * up_proj(m));
}

torch::Tensor DecoderBlock::forward(const torch::Tensor& h, const BlockContext& ctx) {
  auto x = h + attention_update(h, ctx);
  return x + mlp_update(x);
}

EncoderBlock::EncoderBlock(const ModelConfig& c)
    : heads_(c.num_attention_heads), head_dim_(c.head_dim()), act_(c.hidden_act) {
  const int64_t H = c.hidden_size;
  auto attention = register_module("attention", Scope());
  auto self = attention->register_module("self", Scope());
  query = self->register_module("query", Linear(H, H, true));
  key = self->register_module("key", Linear(H, H, true));
  value = self->register_module("value", Linear(H, H, true));
  auto attention_output = attention->register_module("output", Scope());
  attention_dense = attention_output->register_module("dense", Linear(H, H, true));
  attention_norm = attention_output->register_module("LayerNorm", make_layer_norm(H, c.layer_norm_eps));
  auto intermediate = register_module("intermediate", Scope());
  intermediate_dense = intermediate->register_module("dense", Linear(H, c.intermediate_size, true));
  auto output = register_module("output", Scope());
  output_dense = output->register_module("dense", Linear(c.intermediate_size, H, true));
  output_norm = output->register_module("LayerNorm", make_layer_norm(H, c.layer_norm_eps));
}

torch::Tensor EncoderBlock::forward(const torch::Tensor& h, const BlockContext& ctx) {
  auto q = split_heads(query(h), heads_, head_dim_);
  auto k = split_heads(key(h), heads_, head_dim_);
  auto v = split_heads(value(h), heads_, head_dim_);
  auto a = attention_norm(h + attention_dense(multi_head_attention(q, k, v, ctx)));
  return output_norm(a + output_dense(activation(act_, intermediate_dense(a))));
}

}  // namespace gemkit
