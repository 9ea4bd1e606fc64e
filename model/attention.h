// Multi-head attention core shared by both families: masking, grouped-query heads, the KV
// cache, and the call into scaled-dot-product attention (core/torch_compat.h).
//
// Masking in LibTorch 1.13 (checked against the library): is_causal=true builds a top-left
// lower-triangular [q_len, kv_len] mask, which is wrong whenever q_len != kv_len (decoding with a
// cache), and a row whose keys are all -inf gives NaN. So is_causal is used only for the plain
// full-sequence case, and every other case gets an explicit additive mask whose disallowed
// entries are the dtype's lowest finite value (a fully masked row, e.g. a left-padding query,
// stays finite; its output is never used).
#pragma once
#include <torch/torch.h>

#include "model/kv_cache.h"

namespace gemkit {

// What a block needs besides the hidden states. The Transformer fills it once per forward and
// gives each block a copy with its own cache slot. A wrapper that runs its block on a subset of
// tokens (a token router) selects the same tokens from positions, cos, sin and token_valid.
struct BlockContext {
  torch::Tensor positions;    // [B, T] int64 absolute positions of these tokens, ascending
  torch::Tensor cos, sin;     // [B, T, head_dim] RoPE tables for `positions` (decoder only)
  torch::Tensor token_valid;  // [B, T] bool, false for padding; undefined: all tokens are real
  torch::Tensor segments;     // [B, T] int64 packed-document ids (select them too); undefined: one
  bool causal = true;         // decoder: a token sees earlier positions; encoder: all tokens
  LayerKV* kv = nullptr;      // this block's cache slot, or none (no incremental decoding)
  int64_t layer_index = -1;   // which block this is (for wrappers' bookkeeping and errors)
};

// Additive mask [B, 1, T, S]: 0 where query t may see key s (key real, and for causal
// attention key position <= query position, and with segments given, the same segment), the
// lowest finite value elsewhere.
torch::Tensor build_attention_mask(const torch::Tensor& query_positions,
                                   const torch::Tensor& key_positions,
                                   const torch::Tensor& key_valid, bool causal,
                                   torch::ScalarType dtype,
                                   const torch::Tensor& query_segments = {},
                                   const torch::Tensor& key_segments = {});

// q [B, heads, T, d]; k, v [B, kv_heads, T, d] for the current tokens (RoPE already applied).
// Appends k, v to ctx.kv when set and attends over everything cached. Returns [B, T, heads*d].
torch::Tensor multi_head_attention(const torch::Tensor& q, const torch::Tensor& k,
                                   const torch::Tensor& v, const BlockContext& ctx);

}  // namespace gemkit
