// Text generation for the decoder family: prefill the prompt into a KV cache, then decode one
// token at a time with greedy or sampled selection.
//
// Sampling is deterministic given the seed on every device: logits are copied to the CPU and
// drawn with gemkit's own RNG (a 64-bit Mersenne twister and an explicit double conversion),
// never with a device generator. Order of the filters, as in Hugging Face: temperature, top-k,
// top-p.
#pragma once
#include <cstdint>
#include <functional>
#include <random>
#include <vector>

#include "model/transformer.h"

namespace gemkit {

struct GenerationConfig {
  int64_t max_new_tokens = 64;
  bool do_sample = false;      // false: greedy (argmax); the three filters below are unused
  double temperature = 1.0;    // > 0
  int64_t top_k = 0;           // keep the k most likely tokens; 0: off
  double top_p = 1.0;          // keep the smallest set with probability mass >= top_p; 1: off
  uint64_t seed = 0;
  // A sequence stops after producing one of these (the token is included in its output).
  // Empty: the model's eos_token_id, when it has one.
  std::vector<int64_t> stop_token_ids;
  // Fed for the left padding of shorter prompts in a batch. -1: pad_token_id, else 0.
  int64_t pad_token_id = -1;
};

// Called for every generated token as soon as it is chosen: (sequence index in the batch,
// token). Returning false stops that sequence.
using TokenCallback = std::function<bool(int64_t sequence, int64_t token)>;

// Generates for each prompt (batched, left-padded); returns the new tokens of each sequence.
std::vector<std::vector<int64_t>> generate(Transformer& model,
                                           const std::vector<std::vector<int64_t>>& prompts,
                                           const GenerationConfig& config,
                                           const TokenCallback& on_token = nullptr);
// One prompt.
std::vector<int64_t> generate(Transformer& model, const std::vector<int64_t>& prompt,
                              const GenerationConfig& config, const TokenCallback& on_token = nullptr);

// Chooses the next token from one row of logits (greedy or sampled per `config`).
// Exposed for tests and for callers that run their own decoding loop.
int64_t select_token(const float* logits, int64_t vocab, const GenerationConfig& config,
                     std::mt19937_64& rng);

}  // namespace gemkit
