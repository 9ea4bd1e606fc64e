// SentencePiece's normalizer (normalizer.cc): optional precompiled character map (a
// darts-clone double-array trie plus a blob of NUL-terminated replacements, as produced for
// nmt_nfkc and friends), user-defined symbols kept verbatim, whitespace removal / escaping
// to U+2581, and the dummy prefix. Reproduces libsentencepiece's output byte for byte.
#pragma once
#include <string>
#include <string_view>

#include "tokenizers/byte_trie.h"
#include "tokenizers/sentencepiece_model.h"

namespace gemkit {

class SpmNormalizer {
 public:
  SpmNormalizer() = default;
  // `where` names the model file in errors (a malformed charsmap).
  SpmNormalizer(const SentencePieceModel& m, const ByteTrie* user_defined, const std::string& where);
  std::string normalize(std::string_view input) const;

 private:
  // Longest charsmap rule matching a prefix of s: its length and replacement.
  size_t charsmap_prefix(std::string_view s, std::string_view* replacement) const;
  std::pair<std::string_view, size_t> normalize_prefix(std::string_view s) const;

  bool add_dummy_prefix_ = true, remove_extra_whitespaces_ = true, escape_whitespaces_ = true;
  bool treat_whitespace_as_suffix_ = false;
  const ByteTrie* user_defined_ = nullptr;
  std::string charsmap_;          // owned copy of the blob
  const uint32_t* units_ = nullptr;  // double-array units inside charsmap_
  size_t n_units_ = 0;
  std::string_view replacements_;
};

}  // namespace gemkit
