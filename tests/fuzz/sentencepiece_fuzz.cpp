// libFuzzer target: a SentencePiece tokenizer.model (the protobuf parser of
// tokenizers/sentencepiece_model.h, then the BPE or unigram tokenizer built from it). A model
// that loads encodes and decodes the probe text.
#include "core/error.h"
#include "tests/fuzz/fuzz_target.h"
#include "tests/fuzz/tokenizer_probe.h"
#include "tokenizers/sentencepiece_model.h"
#include "tokenizers/tokenizer_loaders.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemkit;
  try {
    const SentencePieceModel model =
        SentencePieceModel::parse(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz");
    (void)model;
  } catch (const Error&) {
    return 0;  // the loader below parses the same bytes
  }
  const std::string path = fuzz::write_input(data, size, "tokenizer.model");
  try {
    fuzz::probe_tokenizer(*load_sentencepiece_model(path));
  } catch (const Error&) {
  }
  return 0;
}
