// Byte-level BPE (GPT-2, Llama 3, Qwen2): added tokens are cut out first, the rest is
// pre-tokenized (pretokenizer.h), each piece's UTF-8 bytes are mapped to GPT-2's printable
// code points, and merges are applied lowest rank first (leftmost on ties), as in the
// Hugging Face tokenizers library. Built from tokenizer.json, GGUF "gpt2" metadata, or
// encoder.json + vocab.bpe.
#pragma once
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizers/added_tokens.h"
#include "tokenizers/pretokenizer.h"
#include "tokenizers/tokenizer.h"

namespace gemkit {

struct ByteLevelBpeConfig {
  std::vector<std::string> vocab;  // id -> token text (byte-level alphabet); "" for holes
  std::vector<std::pair<std::string, std::string>> merges;  // rank order
  std::vector<AddedToken> added;   // matched in raw text before pre-tokenization
  PreTokenizer pretokenizer = PreTokenizer::Gpt2;
  bool ignore_merges = false;      // Llama 3: a piece that is itself a token is not merged
  SpecialTokens special;
};

class ByteLevelBpeTokenizer : public Tokenizer {
 public:
  // `where` names the source file in errors.
  ByteLevelBpeTokenizer(ByteLevelBpeConfig config, const std::string& where);

  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
  std::string token_text(int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(vocab_.size()); }
  std::string kind() const override { return "byte-level-bpe"; }
  PreTokenizer pretokenizer() const { return pretokenizer_; }

 private:
  void encode_piece(std::string_view piece, std::vector<int32_t>& out) const;

  std::string where_;
  std::vector<std::string> vocab_;
  std::unordered_map<std::string, int32_t> token_to_id_;
  // (left id, right id) -> (rank, merged id)
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges_;
  int32_t byte_id_[256];  // id of each single byte's token
  std::vector<uint8_t> is_special_;
  std::vector<uint8_t> is_added_;
  AddedTokenMatcher added_;
  PreTokenizer pretokenizer_;
  bool ignore_merges_;
};

}  // namespace gemkit
