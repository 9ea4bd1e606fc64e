// SentencePiece tokenizer (BPE and unigram) implemented from the model file alone, matching
// libsentencepiece 0.1.97's SentencePieceProcessor::Encode / Decode id for id:
//   normalize (SpmNormalizer) -> BPE merges by piece score (bpe_model.cc) or unigram Viterbi
//   (unigram_model.cc, EncodeOptimized) -> byte fallback or merged <unk> runs.
// Also serves GGUF "llama" vocabularies (llama.cpp's SPM tokenizer is score-ordered BPE).
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "tokenizers/byte_trie.h"
#include "tokenizers/sentencepiece_model.h"
#include "tokenizers/spm_normalizer.h"
#include "tokenizers/tokenizer.h"

namespace gemkit {

class SentencePieceTokenizer : public Tokenizer {
 public:
  // `where` names the source (file) in errors. `special` overrides the ids derived from the
  // model (GGUF files carry their own); pass nullptr to derive them from the model.
  SentencePieceTokenizer(SentencePieceModel model, const std::string& where,
                         const SpecialTokens* special = nullptr);
  // Lookup tables hold views into model_: the object stays where it was built.
  SentencePieceTokenizer(const SentencePieceTokenizer&) = delete;
  SentencePieceTokenizer& operator=(const SentencePieceTokenizer&) = delete;

  std::vector<int32_t> encode(std::string_view text, bool add_special = true) const override;
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = true) const override;
  std::string token_text(int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(model_.pieces.size()); }
  std::string kind() const override;

  // Encoding without BOS/EOS, appended to `out` (used by benchmarks and by encode).
  void encode_into(std::string_view text, std::vector<int32_t>& out) const;
  const SentencePieceModel& model() const { return model_; }

 private:
  using Result = std::vector<std::pair<std::string_view, int32_t>>;
  void encode_bpe(std::string_view normalized, Result& out) const;
  void encode_unigram(std::string_view normalized, Result& out) const;
  int32_t piece_to_id(std::string_view piece) const;  // unk_id_ when absent
  bool is_type(int32_t id, int32_t type) const {
    return id >= 0 && id < vocab_size() && model_.pieces[id].type == type;
  }

  SentencePieceModel model_;
  std::string where_;
  std::unordered_map<std::string_view, int32_t> pieces_;    // NORMAL, USER_DEFINED, UNUSED
  std::unordered_map<std::string_view, int32_t> reserved_;  // CONTROL, UNKNOWN, BYTE
  ByteTrie user_defined_;
  ByteTrie unigram_trie_;
  SpmNormalizer normalizer_;
  int32_t unk_id_ = -1;
  int32_t byte_ids_[256];
  float min_score_ = 0, max_score_ = 0;
};

}  // namespace gemkit
