// Added / special tokens that must be recognised in raw text before any pre-tokenization
// (Hugging Face's AddedVocabulary; llama.cpp's tokenizer_st_partition). Matching is
// leftmost-longest, as in the tokenizers library; lstrip / rstrip swallow the whitespace next
// to a match and single_word requires word boundaries on both sides.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizers/byte_trie.h"

namespace gemkit {

struct AddedToken {
  std::string content;
  int32_t id = -1;
  bool special = false;  // control token: dropped by decode(skip_special)
  bool lstrip = false, rstrip = false, single_word = false;
};

class AddedTokenMatcher {
 public:
  void add(const AddedToken& t);
  bool empty() const { return tokens_.empty(); }
  struct Fragment {
    std::string_view text;  // raw text when id < 0
    int32_t id = -1;        // matched token
  };
  std::vector<Fragment> split(std::string_view text) const;
  const std::vector<AddedToken>& tokens() const { return tokens_; }

 private:
  std::vector<AddedToken> tokens_;
  ByteTrie trie_;  // content -> index into tokens_
};

}  // namespace gemkit
