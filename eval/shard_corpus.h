// Held-out token shards (`gemkit data prepare`, data/token_shards.h) as perplexity corpora:
// one Corpus per domain of the shard (doc_domain + domain_names), each document its token ids
// framed with bos/eos exactly as the training loader frames them (data/loader.h). Torch-free.
//
// Token ids mean something only for the tokenizer that made them: a shard whose tokenizer
// hash differs from the model's tokenizer file is refused, naming both.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "eval/tasks.h"

namespace gemkit::eval {

// True for a path the corpus readers treat as a token shard (".h5").
bool is_token_shard_path(const std::string& path);

// `model_path`: the checkpoint folder (or tokenizer file) whose tokenizer scores the shard.
// `max_documents` > 0 keeps each domain's first max_documents documents.
std::vector<Corpus> read_shard_corpora(const std::string& path, const std::string& model_path,
                                       int64_t max_documents = 0);

}  // namespace gemkit::eval
