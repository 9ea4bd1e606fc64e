// Perplexity of a model file on documents, as gemkit-run computes it (--perplexity): the same
// framing and windows as `gemkit eval` (eval/perplexity.h), so the two can be set side by side
// (the deployed file against the checkpoint it came from): each document is bos (when the
// tokenizer adds one) + its tokens + eos, cut into windows of at most `window` tokens that
// overlap by one, so every token but the first is scored exactly once; each window is a fresh
// sequence (an empty KV cache, routing from scratch).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "runtime/model.h"

namespace gemkit::runtime {

struct PerplexityResult {
  int64_t documents = 0, tokens = 0;  // scored tokens
  double nll_sum = 0;
  double mean_nll() const { return tokens ? nll_sum / double(tokens) : 0.0; }
};

// Documents of a text file: a .jsonl file's "text" strings, one record per line; any other file,
// each non-empty line. Throws gemkit::Error naming the file and line for a record without text.
std::vector<std::string> read_documents(const std::string& path);

// `documents` in order until `max_tokens` scored tokens (whole documents; 0: all). `domain`:
// SCAR expert forced for every token ("" routes).
PerplexityResult perplexity(const Model& model, const std::vector<std::string>& documents, int64_t window, int threads,
                            int64_t max_tokens = 0, const std::string& domain = "");

}  // namespace gemkit::runtime
