// Dynamic Token Router (DTR, docs/design/gem-method.md §2): Mixture-of-Depths style routing of one
// decoder block, made causal so that token-by-token decoding works.
//
// A TokenRouter wraps decoder block i (Transformer::set_block). Per token it computes a logit
// r = w . rmsnorm(h) + b and a gate g = sigmoid(r). Only the chosen tokens are gathered into a
// shorter sequence, run through the block (attention among the chosen tokens only, at their
// original positions, causal), and scattered back with the block's residual update scaled by g;
// every other token passes through unchanged. The gather makes the saving real: attention and
// MLP cost scale with the number of chosen tokens.
//
// Which tokens are chosen depends on the mode of the wrapped block (it is registered in the
// Transformer, so model->train() / model->eval() switch it):
//  - train: the top ceil(c * T_real) tokens of each sequence by r (c = capacity). Top-k looks at
//    the future, so an auxiliary loss teaches the gate to predict top-k membership;
//  - eval: tokens with g > threshold. This rule is causal, so it works with the KV cache: a
//    token the router skips writes nothing into this block's cache (the cache holds exactly
//    the tokens the block saw, and masking is by stored positions; model/kv_cache.h).
#pragma once
#include <torch/torch.h>

#include <memory>
#include <string>
#include <vector>

#include "model/blocks.h"
#include "model/transformer.h"

namespace gemkit {

struct TokenRouterOptions {
  double capacity = 0.5;  // training: fraction c in (0, 1] of each sequence's real tokens
  double threshold = 0.5;  // inference: a token is processed when sigmoid(r) > threshold
  // Starting from a pretrained dense model the gate starts near 1 (sigmoid(3) = 0.95), so the
  // routed model begins close to the dense one.
  double initial_bias = 3.0;
  // true: attention only is routed, the MLP runs on every token; false: the whole block.
  bool attention_only = false;
  // Capacity annealing from 1.0 to `capacity` over this many steps (0: no annealing).
  int64_t anneal_steps = 0;
  // The router weights are drawn from a generator of their own, seeded from this and the block
  // index (LibTorch's global generator starts from a random seed).
  uint64_t seed = 0;
};

// Throws gemkit::Error "TokenRouterOptions.<field>: ..." for out-of-range values.
void validate(const TokenRouterOptions& options);

// Capacity at a training step: linear from 1.0 at step 0 to options.capacity at
// options.anneal_steps, then constant.
double annealed_capacity(const TokenRouterOptions& options, int64_t step);

// What the last forward did, for the trainer's loss-term registry and the logs.
struct TokenRouterStats {
  // Binary cross-entropy of the gate against top-k membership (train mode; undefined in eval).
  torch::Tensor aux_loss;
  int64_t real_tokens = 0;       // non-padding tokens seen
  int64_t processed_tokens = 0;  // tokens the block actually ran on
  double realised_capacity = 0.0;  // processed / real
  // Fraction of real tokens where the threshold rule (g > threshold) agrees with top-k
  // membership at the current capacity; computed in both modes ("both rules" of the spec).
  double predictor_accuracy = 0.0;
};

// Counts summed over every forward since reset_totals() (the metrics of a training step with
// several micro-batches, or of a whole evaluation corpus).
struct TokenRouterTotals {
  int64_t real_tokens = 0, processed_tokens = 0, predictor_agree = 0;
  double realised_capacity() const { return real_tokens ? double(processed_tokens) / double(real_tokens) : 0.0; }
  double predictor_accuracy() const { return real_tokens ? double(predictor_agree) / double(real_tokens) : 0.0; }
};

class TokenRouter : public Block {
 public:
  // base: the Transformer's base_block(layer_index), a DecoderBlock. The router's parameters
  // are "weight" [hidden] and "bias" []; its owner registers it (TokenRouters below).
  TokenRouter(BlockPtr base, int64_t layer_index, const ModelConfig& config,
              TokenRouterOptions options);
  torch::Tensor forward(const torch::Tensor& h, const BlockContext& ctx) override;

  // r = w . rmsnorm(h) + b, [B, T].
  torch::Tensor logits(const torch::Tensor& h) const;

  const TokenRouterOptions& options() const { return options_; }
  int64_t layer_index() const { return layer_index_; }
  double capacity() const { return capacity_; }
  void set_capacity(double capacity);  // (0, 1]
  void set_step(int64_t step) { set_capacity(annealed_capacity(options_, step)); }
  // Inference rule: the threshold (default, causal) or top-k at the current capacity (looks at
  // the whole sequence: for measuring what the causal rule costs, not for decoding).
  void set_top_k_at_inference(bool top_k) { top_k_at_inference_ = top_k; }
  const TokenRouterStats& stats() const { return stats_; }
  const TokenRouterTotals& totals() const { return totals_; }
  void reset_totals() { totals_ = TokenRouterTotals{}; }
  // [B, T] bool: which tokens the last forward processed.
  const torch::Tensor& last_selection() const { return last_selection_; }

  torch::Tensor weight, bias;

 private:
  // [B, T] bool, the top ceil(capacity * T_real) real tokens of each row by r.
  torch::Tensor top_k_selection(const torch::Tensor& r, const torch::Tensor& valid) const;

  std::shared_ptr<DecoderBlock> base_;
  int64_t layer_index_;
  double eps_;
  TokenRouterOptions options_;
  double capacity_;
  bool top_k_at_inference_ = false;
  TokenRouterStats stats_;
  TokenRouterTotals totals_;
  torch::Tensor last_selection_;
};

// The default routed blocks: every other block, never the first or the last (1, 3, 5, ...).
std::vector<int64_t> default_routed_blocks(int64_t num_blocks);

// Wraps the given blocks of a decoder Transformer with TokenRouters and owns them: parameters
// are named "routers.<i>.weight" and "routers.<i>.bias", on the model's device and dtype. The
// Transformer's own named_parameters() are unchanged.
class TokenRoutersImpl : public torch::nn::Module {
 public:
  TokenRoutersImpl(Transformer model, const std::vector<int64_t>& blocks,
                   const TokenRouterOptions& options);
  const std::vector<std::shared_ptr<TokenRouter>>& routers() const { return routers_; }
  void set_step(int64_t step);
  // Sum of the routers' auxiliary losses from the last forward (train mode).
  torch::Tensor aux_loss() const;
  // Puts the base blocks back (the routers stay registered here).
  void uninstall();

 private:
  Transformer model_;
  std::vector<std::shared_ptr<TokenRouter>> routers_;
};
TORCH_MODULE(TokenRouters);

}  // namespace gemkit
