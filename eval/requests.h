// What the scorer is asked: the log-likelihood of a continuation given a context, both token
// ids. Built from text here so that multiple choice, label-word classification and
// perplexity tokenize the same way. Torch-free.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "tokenizers/tokenizer.h"

namespace gemkit::eval {

struct ScoreRequest {
  std::vector<int32_t> context;       // at least one token (the first is never scored)
  std::vector<int32_t> continuation;  // the scored tokens
};

// Splits prompt + continuation the way lm-evaluation-harness does: the whole text is encoded
// once and the continuation is what follows the prompt's own encoding, so the tokens at the
// boundary are the ones the model would see in running text (" Paris" is one "▁Paris" piece,
// not "▁" + "Paris"). Where the joint encoding does not start with the prompt's (a merge across
// the boundary), the split is at their longest common prefix. The tokenizer's BOS is
// prepended when it adds one (Llama) and `add_bos` (a chat template writes its own); other
// special tokens (BERT's [SEP], EOS) are not added.
ScoreRequest make_request(const Tokenizer& tok, const std::string& prompt, const std::string& continuation,
                          bool add_bos = true);

// The prompts (DATA.md formats; the answer follows after one space):
//   multiple choice: "{context}\nAnswer:" + " {choice}"
//   classification:  "{text}\nLabel:"     + " {label}"
std::string mc_prompt(const std::string& context);
std::string label_prompt(const std::string& text);

}  // namespace gemkit::eval
