// libFuzzer target: a BERT vocab.txt (load_wordpiece_vocab, lower-casing and cased). A
// vocabulary that loads encodes and decodes the probe text.
#include "core/error.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/tokenizer_probe.h"
#include "tokenizers/tokenizer_loaders.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string path = fuzz::write_input(data, size, "vocab.txt");
  for (bool lowercase : {true, false}) {
    try {
      fuzz::probe_tokenizer(*load_wordpiece_vocab(path, lowercase));
    } catch (const Error&) {
    }
  }
  return 0;
}
