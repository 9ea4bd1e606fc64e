// Text <-> token ids. Torch-free: tokenizers also run in data-preparation processes and in
// the edge runtime. Implementations: SentencePiece (BPE and unigram, read from
// tokenizer.model by our own parser), byte-level BPE (tokenizer.json: GPT-2, Llama 3, Qwen2)
// and WordPiece (tokenizer.json or vocab.txt: BERT); each can also be built from a GGUF
// file's tokenizer.ggml.* metadata.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace gemkit {

// The files of a tokenizer in a Hugging Face checkpoint folder. One of the first three holds the
// vocabulary (the one a folder is identified by, in this order); the others carry settings.
inline constexpr const char* kTokenizerJsonFile = "tokenizer.json";
inline constexpr const char* kSentencePieceModelFile = "tokenizer.model";
inline constexpr const char* kWordPieceVocabFile = "vocab.txt";
inline constexpr const char* kTokenizerConfigFile = "tokenizer_config.json";
inline constexpr const char* kSpecialTokensMapFile = "special_tokens_map.json";
inline constexpr const char* kTokenizerVocabularyFiles[] = {kTokenizerJsonFile, kSentencePieceModelFile,
                                                            kWordPieceVocabFile};

struct SpecialTokens {
  int32_t bos = -1, eos = -1, unk = -1, pad = -1;  // -1: the vocabulary has none
  int32_t cls = -1, sep = -1, mask = -1;           // WordPiece / BERT
  bool add_bos = false;                            // encode(add_special) prepends bos
  bool add_eos = false;                            // encode(add_special) appends eos
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // add_special: the model's own convention (BOS for Llama, [CLS] ... [SEP] for BERT).
  virtual std::vector<int32_t> encode(std::string_view text, bool add_special = true) const = 0;
  // skip_special: drop control tokens (bos, eos, pad, cls, ...) from the text.
  virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const = 0;
  virtual std::string token_text(int32_t id) const = 0;  // the vocabulary entry, as stored
  virtual int32_t vocab_size() const = 0;
  // "sentencepiece-bpe", "sentencepiece-unigram", "byte-level-bpe" or "wordpiece".
  virtual std::string kind() const = 0;
  const SpecialTokens& special() const { return special_; }

 protected:
  SpecialTokens special_;
};

// Loads from a checkpoint folder (tokenizer.json, else tokenizer.model, else vocab.txt),
// or from one of those files, or from a .gguf file's tokenizer metadata.
// Errors name the file and the field that is wrong.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace gemkit
