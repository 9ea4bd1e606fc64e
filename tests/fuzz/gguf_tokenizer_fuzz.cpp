// libFuzzer target: tokenizer.ggml.* metadata of a GGUF file (load_gguf_tokenizer: llama ->
// SentencePiece, gpt2 -> byte-level BPE, bert -> WordPiece). A vocabulary that loads encodes
// and decodes a probe text; every id it produces lies inside the vocabulary.
#include "core/error.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/tokenizer_probe.h"
#include "tokenizers/tokenizer_loaders.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  const std::string path = fuzz::write_input(data, size, "vocab.gguf");
  try {
    fuzz::probe_tokenizer(*load_gguf_tokenizer(path));
  } catch (const Error&) {
  }
  return 0;
}
