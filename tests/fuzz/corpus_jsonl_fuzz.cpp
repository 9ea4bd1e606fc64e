// libFuzzer target: a domain corpus file (eval::read_corpus_file: JSONL documents with a
// "text" field), read whole and with a document limit.
#include "core/error.h"
#include "eval/tasks.h"
#include "tests/fuzz/fuzz_target.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string path = fuzz::write_input(data, size, "law.test.jsonl");
  for (int64_t limit : {int64_t(0), int64_t(2)}) {
    try {
      const eval::Corpus corpus = eval::read_corpus_file(path, limit);
      fuzz::require(limit == 0 || int64_t(corpus.documents.size()) <= limit, "the document limit holds");
    } catch (const Error&) {
    }
  }
  return 0;
}
