// Token-level perplexity of a causal LM on held-out documents: exp(mean NLL over scored
// tokens), with a bootstrap interval over documents, and bits per UTF-8 byte (comparable
// across tokenizers; only where the text is known: token shards carry no text, so their
// results have no bits_per_byte).
//
// Documents are framed as the training loader frames them (data/loader.h: bos when the
// tokenizer prepends one, eos), so text and token shards of the same documents score the same
// and the eos (where a document ends) is scored too. Each document is cut into windows of at
// most seq_len tokens that overlap by one token, so every token except the document's first is
// scored exactly once, and the first token of a window is context only. Each window is its
// own row; rows are sorted by length before batching, which keeps the padding small. Packing
// several documents per row as segments (ForwardOptions::segment_ids) scores the same but was
// measured slower on CPU: masked attention costs the square of the row length, so a short
// document in a long packed row pays for attention over the whole row, which is more than the
// little padding that length-sorted batching leaves.
#pragma once
#include <cstdint>
#include <vector>

#include "eval/bootstrap.h"
#include "eval/requests.h"
#include "eval/result.h"
#include "eval/tasks.h"
#include "tokenizers/tokenizer.h"

namespace gemkit::eval {

class Scorer;

// Windows of one tokenized document: context = the window's first token, continuation = the
// rest. With `scored` (one 0/1 per id: a chat example's answers), one window per run of scored
// tokens (split where longer than seq_len - 1), its context everything before the run that fits
// in seq_len: the answer is scored given its question, as the model saw it in training.
std::vector<ScoreRequest> document_windows(const std::vector<int32_t>& ids, int64_t seq_len,
                                           const std::vector<uint8_t>& scored = {});

struct DocumentNll {
  double nll = 0;      // summed over the document's scored tokens
  int64_t tokens = 0;  // scored tokens
  int64_t bytes = 0;   // UTF-8 bytes of the text
};

// perplexity = exp(sum nll / sum tokens) over the given documents (a bootstrap sample).
double perplexity_of(const std::vector<DocumentNll>& docs, const std::vector<size_t>& idx);

// Per-document NLL of already tokenized (and framed) documents; `scored`: none, or one mask per
// document (Document::scored; empty: every token).
std::vector<DocumentNll> document_nlls(const Scorer& scorer, const std::vector<std::vector<int32_t>>& docs,
                                       int64_t seq_len, const std::string& label,
                                       const std::vector<std::vector<uint8_t>>& scored = {});

// Result "perplexity" for one corpus (text, or token ids from a shard: Corpus::tokenizer_hash):
// figures perplexity and, for text, bits_per_byte; method "token_nll", or "answer_nll" where the
// shard's chat examples are scored on their answers only. max_tokens > 0 scores only the first
// documents, whole, until that many tokens are reached (a fixed token budget per domain, whatever
// its documents' lengths).
Result evaluate_perplexity(const Scorer& scorer, const Tokenizer& tok, const Corpus& corpus, int64_t seq_len,
                           const BootstrapOptions& boot, int64_t max_tokens = 0);

// The Result for per-document NLLs (bytes may be 0: then no bits_per_byte).
Result perplexity_result(const std::string& domain, const std::vector<DocumentNll>& docs,
                         const BootstrapOptions& boot);

}  // namespace gemkit::eval
