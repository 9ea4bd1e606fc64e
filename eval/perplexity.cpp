#include "eval/perplexity.h"

#include <cmath>

#include "core/error.h"
#include "data/loader.h"
#include "eval/progress.h"
#include "eval/scorer.h"

namespace gemkit::eval {

std::vector<ScoreRequest> document_windows(const std::vector<int32_t>& ids, int64_t seq_len,
                                           const std::vector<uint8_t>& scored) {
  if (seq_len < 2) fail("eval.seq_len", "must be at least 2");
  std::vector<ScoreRequest> rows;
  if (!scored.empty()) {
    if (scored.size() != ids.size())
      fail("eval", "a loss mask of " + std::to_string(scored.size()) + " entries for a document of " +
                       std::to_string(ids.size()) + " tokens");
    const size_t longest = size_t(seq_len - 1);
    for (size_t begin = 1; begin < ids.size();) {  // the first token has no context: never scored
      if (!scored[begin]) {
        ++begin;
        continue;
      }
      size_t end = begin;
      while (end < ids.size() && scored[end] && end - begin < longest) ++end;
      const size_t from = end > size_t(seq_len) ? end - size_t(seq_len) : 0;
      ScoreRequest r;
      r.context.assign(ids.begin() + std::ptrdiff_t(from), ids.begin() + std::ptrdiff_t(begin));
      r.continuation.assign(ids.begin() + std::ptrdiff_t(begin), ids.begin() + std::ptrdiff_t(end));
      rows.push_back(std::move(r));
      begin = end;
    }
    return rows;
  }
  const size_t step = size_t(seq_len - 1);
  for (size_t start = 0; start + 1 < ids.size(); start += step) {
    const size_t end = std::min(ids.size(), start + size_t(seq_len));
    ScoreRequest r;
    r.context.assign(ids.begin() + std::ptrdiff_t(start), ids.begin() + std::ptrdiff_t(start + 1));
    r.continuation.assign(ids.begin() + std::ptrdiff_t(start + 1), ids.begin() + std::ptrdiff_t(end));
    rows.push_back(std::move(r));
  }
  return rows;
}

double perplexity_of(const std::vector<DocumentNll>& docs, const std::vector<size_t>& idx) {
  double nll = 0;
  int64_t tokens = 0;
  for (size_t i : idx) {
    nll += docs[i].nll;
    tokens += docs[i].tokens;
  }
  return tokens > 0 ? std::exp(nll / double(tokens)) : std::nan("");
}

std::vector<DocumentNll> document_nlls(const Scorer& scorer, const std::vector<std::vector<int32_t>>& docs,
                                       int64_t seq_len, const std::string& label,
                                       const std::vector<std::vector<uint8_t>>& scored) {
  if (!scored.empty() && scored.size() != docs.size()) fail("eval", "expected one loss mask per document");
  std::vector<ScoreRequest> rows;
  std::vector<size_t> owner;
  static const std::vector<uint8_t> every_token;  // no mask: score every token (bound by reference, not copied)
  for (size_t d = 0; d < docs.size(); ++d)
    for (ScoreRequest& r : document_windows(docs[d], seq_len, scored.empty() ? every_token : scored[d])) {
      rows.push_back(std::move(r));
      owner.push_back(d);
    }
  Progress progress(label, int64_t(rows.size()), "rows");
  const std::vector<ContinuationScore> scores = scorer.score(rows, [&](int64_t n) { progress.update(n); }, /*share_prefixes=*/false);
  progress.finish();
  std::vector<DocumentNll> out(docs.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    out[owner[i]].nll -= scores[i].logprob;
    out[owner[i]].tokens += scores[i].tokens;
  }
  return out;
}

Result perplexity_result(const std::string& domain, const std::vector<DocumentNll>& docs,
                         const BootstrapOptions& boot) {
  Result r;
  r.kind = "perplexity";
  r.key = domain;
  r.domain = domain;
  r.method = "token_nll";
  r.primary = "perplexity";
  r.items = int64_t(docs.size());
  r.figures.push_back({"perplexity", bootstrap(docs.size(), [&](const std::vector<size_t>& idx) {
                         return perplexity_of(docs, idx);
                       }, boot)});
  int64_t tokens = 0, bytes = 0;
  double nll = 0;
  for (const DocumentNll& d : docs) {
    tokens += d.tokens;
    bytes += d.bytes;
    nll += d.nll;
  }
  if (bytes > 0)
    r.figures.push_back({"bits_per_byte", bootstrap(docs.size(), [&](const std::vector<size_t>& idx) {
                           double n = 0, b = 0;
                           for (size_t i : idx) {
                             n += docs[i].nll;
                             b += double(docs[i].bytes);
                           }
                           return b > 0 ? n / (b * std::log(2.0)) : std::nan("");
                         }, boot)});
  r.stats["tokens"] = double(tokens);
  r.stats["bytes"] = double(bytes);
  r.per_item = {{"nll", nlohmann::json::array()}, {"tokens", nlohmann::json::array()}};
  for (const DocumentNll& d : docs) {
    r.per_item["nll"].push_back(d.nll);
    r.per_item["tokens"].push_back(d.tokens);
  }
  r.stats["mean_nll"] = tokens > 0 ? nll / double(tokens) : std::nan("");
  return r;
}

Result evaluate_perplexity(const Scorer& scorer, const Tokenizer& tok, const Corpus& corpus, int64_t seq_len,
                           const BootstrapOptions& boot, int64_t max_tokens) {
  const bool shard = !corpus.tokenizer_hash.empty();  // ids already framed, no text
  const DocumentFraming framing = document_framing(tok.special());
  std::vector<std::vector<int32_t>> docs(corpus.documents.size());
  std::vector<std::vector<uint8_t>> scored(corpus.documents.size());
  for (size_t i = 0; i < docs.size(); ++i) {
    if (shard) docs[i] = corpus.documents[i].ids;
    else framing.append(tok.encode(corpus.documents[i].text, /*add_special=*/false), docs[i]);
    scored[i] = corpus.documents[i].scored;
  }
  if (max_tokens > 0) {  // whole documents in file order until the budget is reached
    size_t keep = 0;
    for (int64_t seen = 0; keep < docs.size() && seen < max_tokens; ++keep) seen += int64_t(docs[keep].size());
    docs.resize(keep);
    scored.resize(keep);
  }
  // Named by the documents actually scored: a budget that keeps only unmasked documents scores every token.
  bool answers_only = false;
  for (const std::vector<uint8_t>& mask : scored) answers_only |= !mask.empty();
  std::vector<DocumentNll> nlls = document_nlls(scorer, docs, seq_len, "perplexity " + corpus.domain, scored);
  if (!shard)
    for (size_t i = 0; i < nlls.size(); ++i) nlls[i].bytes = int64_t(corpus.documents[i].text.size());
  Result r = perplexity_result(corpus.domain, nlls, boot);
  if (answers_only) r.method = "answer_nll";
  return r;
}

}  // namespace gemkit::eval
