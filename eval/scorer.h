// Batched forward passes for evaluation: log-likelihoods of continuations (causal LMs) and
// classification-head logits. Requests are sorted by length and padded on the right to the
// longest in each batch, with the attention mask marking real tokens, so a score does not
// depend on the batch it was computed in (up to float rounding). Runs under NoGradGuard with
// the model in eval mode.
#pragma once
#include <torch/torch.h>

#include <cstdint>
#include <functional>
#include <vector>

#include "eval/requests.h"
#include "model/transformer.h"

namespace gemkit::eval {

struct ContinuationScore {
  double logprob = 0;      // sum of log p(token | everything before it) over the continuation
  int64_t tokens = 0;      // continuation tokens scored
  bool truncated = false;  // the context was cut on the left to fit max_length
};

// Called with the number of requests finished so far.
using ProgressFn = std::function<void(int64_t)>;

class Scorer {
 public:
  // max_length: the longest row (context + continuation); longer requests keep their
  // continuation and lose context from the left. pad_id fills padding (never attended to).
  Scorer(Transformer model, int64_t batch_size, int64_t max_length, int64_t pad_id = 0);

  // Needs a causal LM head. Requests with the same context (after truncation) share it when
  // `share_prefixes` and the scorer allow: the context runs once into a KV cache, continued by
  // all their continuations in one batch (a classification prompt scored against 26 labels runs
  // once, not 26 times). The model is causal, so the scores are those of the whole rows up to
  // float rounding. Perplexity passes false so that routing statistics count every row's tokens.
  std::vector<ContinuationScore> score(const std::vector<ScoreRequest>& requests,
                                       const ProgressFn& progress = {}, bool share_prefixes = true) const;
  // Off where a token's result depends on later tokens: DTR's top-k rule at inference.
  void set_prefix_sharing(bool on) { prefix_sharing_ = on; }
  // bf16 mixed precision (autocast) for the forward passes; log-probabilities stay fp32.
  void set_bf16(bool on) { bf16_ = on; }

  // Needs a sequence-classification head: [requests][num_labels] logits. Inputs longer than
  // max_length keep their first max_length - 1 tokens and their last token (BERT's [SEP]).
  std::vector<std::vector<float>> class_logits(const std::vector<std::vector<int32_t>>& inputs,
                                               const ProgressFn& progress = {}) const;

  const Transformer& model() const { return model_; }
  int64_t max_length() const { return max_length_; }

 private:
  mutable Transformer model_;  // forward() is not const in libtorch; scoring changes no state
  int64_t batch_size_, max_length_, pad_id_;
  bool prefix_sharing_ = true;
  bool bf16_ = false;

  // Scores requests[i] for i in `group` (same context, non-empty continuations) from one pass
  // over the context.
  void score_shared(const std::vector<int32_t>& context, const std::vector<std::vector<int32_t>>& continuations,
                    const std::vector<size_t>& group, std::vector<ContinuationScore>& out) const;
  // One padded batch (right padding, attention mask): per row, the summed log-probability of
  // its tokens from scored_from on (>= 1: a row's first token has no prediction), each predicted by
  // the one before it; after `cache` if given.
  std::vector<double> score_rows(const std::vector<const std::vector<int32_t>*>& rows,
                                 const std::vector<size_t>& scored_from, KVCache* cache) const;
};

}  // namespace gemkit::eval
