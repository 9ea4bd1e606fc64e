#include "tokenizers/tokenizer.h"

#include "core/error.h"
#include "core/file_io.h"
#include "tokenizers/tokenizer_loaders.h"

namespace gemkit {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
}  // namespace

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
  if (is_directory(path)) {
    const std::string dir = ends_with(path, "/") ? path : path + "/";
    const std::string json = dir + kTokenizerJsonFile, spm = dir + kSentencePieceModelFile,
                      vocab = dir + kWordPieceVocabFile;
    // SentencePiece checkpoints often ship both files; the .model is the exact original.
    if (file_exists(json) && !(file_exists(spm) && hf_tokenizer_json_is_sentencepiece(json)))
      return load_hf_tokenizer_json(json);
    if (file_exists(spm)) return load_sentencepiece_model(spm);
    if (file_exists(json)) return load_hf_tokenizer_json(json);
    if (file_exists(vocab)) return load_wordpiece_vocab(vocab);
    fail(path, "no tokenizer found: expected tokenizer.json, tokenizer.model or vocab.txt in the folder");
  }
  if (!file_exists(path)) fail(path, "tokenizer file not found");
  if (ends_with(path, ".json")) return load_hf_tokenizer_json(path);
  if (ends_with(path, ".gguf")) return load_gguf_tokenizer(path);
  if (ends_with(path, ".txt")) return load_wordpiece_vocab(path);
  if (ends_with(path, ".model")) return load_sentencepiece_model(path);
  // Unknown extension: sniff the GGUF magic, else try a SentencePiece model.
  {
    MappedFile m(path);
    if (m.size() >= 4 && std::string_view(reinterpret_cast<const char*>(m.data()), 4) == "GGUF")
      return load_gguf_tokenizer(path);
  }
  return load_sentencepiece_model(path);
}

}  // namespace gemkit
