// libFuzzer target: an HDF5 token shard (data/token_shards.h TokenShard: format version,
// datasets' presence, types and sizes, document offsets, metadata attributes), then every
// document read back. An accepted shard's documents tile its tokens, and every token id lies in
// the vocabulary. The HDF5 library itself (Debian's 1.10) parses the container; a finding inside
// it is reported upstream and documented in docs/reliability.md.
#include "core/error.h"
#include "data/token_shards.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string path = fuzz::write_input(data, size, "law.train.h5");
  try {
    const TokenShard shard(path, size_t(1) << 20);
    int64_t total = 0;
    for (int64_t d = 0; d < shard.n_docs(); ++d) {
      const std::vector<int32_t> doc = shard.read_document(d);
      fuzz::require(int64_t(doc.size()) == shard.doc_length(d), "a document has its declared length");
      for (int32_t id : doc) fuzz::require(id >= 0 && (shard.info().vocab_size == 0 || id < shard.info().vocab_size),
                                   "token ids lie in the vocabulary");
      total += int64_t(doc.size());
    }
    fuzz::require(total == shard.n_tokens(), "the documents tile the tokens");
  } catch (const Error&) {
  }
  return 0;
}
