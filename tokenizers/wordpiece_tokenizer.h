// WordPiece (BERT): BertNormalizer (clean text, pad CJK ideographs, strip accents, lowercase),
// BertPreTokenizer (split on whitespace, isolate punctuation), greedy longest-match-first
// with a continuation prefix ("##"), [UNK] for words that cannot be covered or are longer
// than max_input_chars_per_word, and the [CLS] text [SEP] template. Built from
// tokenizer.json, vocab.txt, or GGUF "bert" metadata.
#pragma once
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizers/added_tokens.h"
#include "tokenizers/tokenizer.h"

namespace gemkit {

struct WordPieceConfig {
  std::vector<std::string> vocab;  // id -> token ("##" marks continuations)
  std::string continuing_prefix = "##";
  size_t max_input_chars_per_word = 100;
  bool clean_text = true, handle_chinese_chars = true, strip_accents = true, lowercase = true;
  std::vector<AddedToken> added;   // matched in raw text first ([CLS], [MASK], ...)
  SpecialTokens special;           // cls/sep/unk/pad/mask; add_bos means "[CLS] ... [SEP]"
};

class WordPieceTokenizer : public Tokenizer {
 public:
  WordPieceTokenizer(WordPieceConfig config, const std::string& where);

  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
  std::string token_text(int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(vocab_.size()); }
  std::string kind() const override { return "wordpiece"; }

  // Normalization + pre-tokenization only (exposed for tests).
  std::vector<std::string> words(std::string_view text) const;

 private:
  void encode_word(const std::string& word, std::vector<int32_t>& out) const;

  std::string where_;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int32_t> token_to_id_;
  WordPieceConfig cfg_;
  AddedTokenMatcher added_;
  std::vector<uint8_t> is_special_;
};

// Reads a BERT vocab.txt (one token per line, id = line number) into a WordPiece config
// with BERT's defaults ([CLS] [SEP] [UNK] [PAD] [MASK] looked up by name).
WordPieceConfig wordpiece_config_from_vocab_txt(const std::string& path, bool lowercase);

}  // namespace gemkit
