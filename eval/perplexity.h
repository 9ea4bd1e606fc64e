// Token-level perplexity of a causal LM on held-out documents: exp(mean NLL over scored
// tokens), with a bootstrap interval over documents, and bits per UTF-8 byte (comparable
// across tokenizers).
//
// Packing: each document is tokenized with the model's tokenizer (BOS included when the
// tokenizer adds one) and cut into rows of at most seq_len tokens that overlap by one token,
// so every token except the document's first is scored exactly once, and the first token of a
// row is context only. A row never holds two documents: the transformer's attention mask has no
// segment boundaries, so documents packed into one row would attend to each other. Rows are
// sorted by length before batching, which keeps the padding small.
#pragma once
#include <cstdint>
#include <vector>

#include "data/tokenizer.h"
#include "eval/bootstrap.h"
#include "eval/report.h"
#include "eval/requests.h"
#include "eval/tasks.h"

namespace gemkit::eval {

class Scorer;

// Rows of one tokenized document: context = the row's first token, continuation = the rest.
std::vector<ScoreRequest> document_windows(const std::vector<int32_t>& ids, int64_t seq_len);

struct DocumentNll {
  double nll = 0;      // summed over the document's scored tokens
  int64_t tokens = 0;  // scored tokens
  int64_t bytes = 0;   // UTF-8 bytes of the text
};

// perplexity = exp(sum nll / sum tokens) over the given documents (a bootstrap sample).
double perplexity_of(const std::vector<DocumentNll>& docs, const std::vector<size_t>& idx);

// Per-document NLL of already tokenized documents (also the entry point for token shards).
std::vector<DocumentNll> document_nlls(const Scorer& scorer, const std::vector<std::vector<int32_t>>& docs,
                                       int64_t seq_len, const std::string& label);

// Result "perplexity" for one corpus: figures perplexity and bits_per_byte.
Result evaluate_perplexity(const Scorer& scorer, const Tokenizer& tok, const Corpus& corpus, int64_t seq_len,
                           const BootstrapOptions& boot);

// The Result for per-document NLLs (bytes may be 0: then no bits_per_byte).
Result perplexity_result(const std::string& domain, const std::vector<DocumentNll>& docs,
                         const BootstrapOptions& boot);

}  // namespace gemkit::eval
