#include "eval/shard_corpus.h"

#include "core/error.h"
#include "core/sha256.h"
#include "data/loader.h"
#include "data/token_shards.h"

namespace gemkit::eval {

bool is_token_shard_path(const std::string& path) {
  return path.size() > 3 && path.compare(path.size() - 3, 3, ".h5") == 0;
}

std::vector<Corpus> read_shard_corpora(const std::string& path, const std::string& model_path,
                                       int64_t max_documents) {
  if (model_path.empty()) fail(path, "a token shard needs the model's tokenizer to check its ids against");
  const TokenShard shard(path);
  const ShardInfo& info = shard.info();
  const std::string tok_file = tokenizer_identity_file(model_path);
  const std::string model_hash = "sha256:" + sha256_file(tok_file);
  if (info.tokenizer_hash != model_hash)
    fail(path, "made with tokenizer " + info.tokenizer_path + " (" + info.tokenizer_hash + "), but the model's " +
                   tok_file + " is " + model_hash + "; its token ids would mean other text to this model");

  const LoaderOptions lo = loader_options_for_shard(path, BatchKind::CausalLM);
  const DocumentFraming framing{lo.bos_id, lo.eos_id};
  std::vector<Corpus> by_domain(info.domain_names.size());
  for (size_t d = 0; d < by_domain.size(); ++d) {
    by_domain[d].domain = info.domain_names[d];
    by_domain[d].path = path;
    by_domain[d].tokenizer_hash = info.tokenizer_hash;
  }
  for (int64_t doc = 0; doc < shard.n_docs(); ++doc) {
    Corpus& c = by_domain.at(size_t(shard.doc_domain(doc)));
    if (max_documents > 0 && int64_t(c.documents.size()) >= max_documents) continue;
    Document d;
    d.id = std::to_string(doc);  // the document's index in the shard
    framing.append(shard, doc, d.ids);
    // A chat example is scored where it was trained, on its answers (its other documents, and
    // shards without a mask, on every token as before).
    if (shard.doc_is_chat(doc)) framing.append_mask(shard, doc, d.scored);
    c.documents.push_back(std::move(d));
  }
  std::vector<Corpus> out;
  for (Corpus& c : by_domain)
    if (!c.documents.empty()) out.push_back(std::move(c));
  if (out.empty()) fail(path, "no documents");
  return out;
}

}  // namespace gemkit::eval
