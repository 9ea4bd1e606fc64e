// libFuzzer target: a Hugging Face tokenizer.json (load_hf_tokenizer_json: byte-level BPE or
// WordPiece; vocabulary, merges, added tokens, normalizer and pre-tokenizer). A file that
// loads encodes and decodes the probe text.
#include "core/error.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/tokenizer_probe.h"
#include "tokenizers/tokenizer_loaders.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string path = fuzz::write_input(data, size, "tokenizer.json");
  try {
    if (!hf_tokenizer_json_is_sentencepiece(path)) fuzz::probe_tokenizer(*load_hf_tokenizer_json(path));
  } catch (const Error&) {
  }
  return 0;
}
