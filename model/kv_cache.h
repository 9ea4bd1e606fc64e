// Key/value cache for incremental decoding (decoder family).
//
// Each layer keeps the keys and values of every token it has processed, with the token's
// absolute position and whether it is a real token (false: padding). The attention mask is
// built from those (key position <= query position, key is real), so one rule covers the full
// forward, token-by-token decoding, left-padded batches and blocks that process only some
// tokens (a token router): a layer's cache holds exactly the tokens that layer saw.
//
// Storage grows by doubling so that decoding N tokens copies O(N) data, not O(N^2). Under
// autograd (GradMode enabled) it concatenates instead, because writing into a buffer in place
// would invalidate tensors saved for backward.
#pragma once
#include <torch/torch.h>

#include <vector>

namespace gemkit {

class LayerKV {
 public:
  // k, v [B, kv_heads, T, head_dim]; positions [B, T] int64; valid [B, T] bool.
  void append(const torch::Tensor& k, const torch::Tensor& v, const torch::Tensor& positions,
              const torch::Tensor& valid);
  // Everything held so far, [B, kv_heads, S, head_dim], [B, S], [B, S].
  torch::Tensor keys() const;
  torch::Tensor values() const;
  torch::Tensor key_positions() const;
  torch::Tensor key_valid() const;
  int64_t length() const { return length_; }
  void clear();
  // Each sequence becomes n copies of itself, one after the other along the batch.
  void repeat_batch(int64_t n);

 private:
  torch::Tensor k_, v_, positions_, valid_;  // capacity along dim 2 (k, v) or dim 1
  int64_t length_ = 0;
};

class KVCache {
 public:
  explicit KVCache(int64_t num_layers);
  int64_t num_layers() const { return static_cast<int64_t>(layers_.size()); }
  LayerKV& layer(int64_t i);
  // Tokens fed so far (padding included); 0 for an empty cache.
  int64_t length() const { return length_; }
  // [B] the position the next real token of each sequence takes; undefined when empty.
  const torch::Tensor& next_positions() const { return next_positions_; }
  // Called by the Transformer after each forward: valid [B, T] of the tokens just fed.
  void advance(const torch::Tensor& valid);
  void clear();
  // Each sequence becomes n copies of itself, one after the other along the batch: a prefix
  // computed once can then be continued n different ways in one batch (evaluation scores every
  // label of a prompt this way).
  void repeat_batch(int64_t n);

 private:
  std::vector<LayerKV> layers_;
  int64_t length_ = 0;
  torch::Tensor next_positions_;
};

}  // namespace gemkit
